"""The e-gate's doors, lane sensors and lamps (a mantrap lane: entry door, exit door).

``channels`` maps logical channels to wires, ``lane_rules`` turns sensor changes into lane events,
``gate_io`` is the :class:`~drivers.interfaces.Gate` on top of a port, and the ports are ``gpio``
(the Pi's header, through gpiozero) and ``modbus_io`` (an RS-485 Modbus RTU relay/IO module, with
its slave simulator in ``modbus_simulator``). The door logic on top is ``drivers.door_controller``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from kiosk.config import ConfigError, DeviceSection

if TYPE_CHECKING:
    from drivers.gate.gate_io import GateIO

# Imported on demand: a Modbus kiosk needs no gpiozero, a GPIO kiosk no serial stack.
BACKENDS = {"gpio": "drivers.gate.gpio", "modbus": "drivers.gate.modbus_io"}


def build(section: DeviceSection) -> GateIO:
    """The started gate for ``section.backend`` ("gpio" or "modbus"; see that module's ``build``)."""
    if section.backend not in BACKENDS:
        raise ConfigError(f"key 'devices.gate.backend': {section.backend!r} is not a gate backend here")
    return importlib.import_module(BACKENDS[section.backend]).build(section)
