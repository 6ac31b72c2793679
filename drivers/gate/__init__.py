"""The e-gate's doors, lane sensors and lamps (a mantrap lane: entry door, exit door).

``channels`` maps logical channels to wires, ``lane_rules`` turns sensor changes into lane events,
``gate_io`` is the :class:`~drivers.interfaces.Gate` on top of a port, and the ports are ``gpio``
(the Pi's header, through gpiozero) and ``modbus_io`` (an RS-485 Modbus RTU relay/IO module, with
its slave simulator in ``modbus_simulator``). ``options`` holds the ``[devices.gate]`` sections. The
door logic on top is ``drivers.door_controller``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers.gate.gate_io import GateIO
    from drivers.gate.options import GpioGateSection, ModbusGateSection


def build(section: GpioGateSection | ModbusGateSection) -> GateIO:
    """The started gate for ``section`` (see ``gpio.build`` and ``modbus_io.build``)."""
    # Imported on demand: a Modbus kiosk needs no gpiozero, a GPIO kiosk no serial stack.
    if section.backend == "gpio":
        from drivers.gate import gpio

        return gpio.build(section)
    from drivers.gate import modbus_io

    return modbus_io.build(section)
