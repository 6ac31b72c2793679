"""Backend 1: relays, lamps and lane sensors on the Pi's GPIO header, through gpiozero.

Outputs start in the safe state (entry locked, exit free, red lamp) from the moment the pins are
claimed. Input edges arrive through gpiozero's callbacks (debounced with ``bounce_time``); a slow
reconcile poll also reads every input, because some pin factories implement bounce by ignoring
edges for a while after one, which can swallow the last edge of a bouncing contact.

When the process exits gpiozero returns the pins to inputs, so the relay board's own defaults
(pull resistors, de-energised relays) decide the doors: wire them to mean "entry locked, exit
free", which the default lock semantics do.

gpiozero is imported when a port is built, so this module imports anywhere.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from drivers.gate.channels import ChannelMap, Input, Output
from drivers.gate.gate_io import GateIO, PortListener
from drivers.gate.options import GpioGateSection, Pull
from drivers.interfaces import DeviceError, Health

log = logging.getLogger(__name__)


class GpioPort:
    def __init__(
        self,
        channels: ChannelMap,
        *,
        pull: Pull = "up",
        bounce_s: float = 0.02,
        reconcile_s: float = 0.25,
        pin_factory: Any = None,
        name: str = "gate",
    ) -> None:
        gpiozero = importlib.import_module("gpiozero")
        self.name = name
        self.channels = channels
        self.reconcile_s = reconcile_s
        self._listener: PortListener | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._devices: list[Any] = []
        initial = channels.safe_raw_outputs()
        # gpiozero's value is the raw level for these settings: active_high outputs, and inputs that
        # are "active" when high. Polarity is the channel map's business, not gpiozero's.
        pulls = {
            "up": {"pull_up": True},
            "down": {"pull_up": False},
            "off": {"pull_up": None, "active_state": True},
        }
        try:
            self._outputs = {
                output: self._claim(
                    gpiozero.DigitalOutputDevice,
                    pin,
                    active_high=True,
                    initial_value=initial[output],
                    pin_factory=pin_factory,
                )
                for output, pin in channels.outputs.items()
            }
            self._inputs = {
                channel: self._claim(
                    gpiozero.DigitalInputDevice,
                    pin,
                    bounce_time=bounce_s or None,
                    pin_factory=pin_factory,
                    **pulls[pull],
                )
                for channel, pin in channels.inputs.items()
            }
        except gpiozero.GPIOZeroError as exc:
            self._release()
            raise DeviceError(name, f"cannot claim the GPIO pins: {exc}") from None

    # --- IoPort ----------------------------------------------------------------------------------

    def start(self, listener: PortListener) -> None:
        self._listener = listener
        for device in self._inputs.values():
            device.when_activated = self._on_edge
            device.when_deactivated = self._on_edge
        listener.inputs_changed(self._snapshot())
        if self.reconcile_s > 0:
            self._thread = threading.Thread(target=self._reconcile, name=f"{self.name}-gpio", daemon=True)
            self._thread.start()

    def write_output(self, output: Output, raw: bool) -> None:
        device = self._output(output)
        device.value = raw
        if bool(device.pin.state) != raw:
            raise DeviceError(self.name, f"{output} pin reads back {int(device.pin.state)} after the write")

    def output_state(self, output: Output) -> bool:
        return bool(self._output(output).pin.state)

    def health(self) -> Health:
        return Health.failed("closed") if self._closed else Health.ok()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._closed = True
        self._release()

    # --- internals -------------------------------------------------------------------------------

    def _claim(self, kind: Any, pin: int, **kwargs: Any) -> Any:
        device = kind(pin, **kwargs)
        self._devices.append(device)
        return device

    def _release(self) -> None:
        for device in self._devices:
            try:
                device.close()
            except Exception as exc:  # closing must go on for the remaining pins whatever one does
                log.warning("%s: releasing a pin failed: %s", self.name, exc)
        self._devices.clear()

    def _output(self, output: Output) -> Any:
        if self._closed:
            raise DeviceError(self.name, "closed")
        return self._outputs[output]

    def _snapshot(self) -> dict[Input, bool]:
        return {name: bool(device.pin.state) for name, device in self._inputs.items()}

    def _on_edge(self) -> None:
        if not self._closed and self._listener is not None:
            self._listener.inputs_changed(self._snapshot())

    def _reconcile(self) -> None:
        while not self._stop.wait(self.reconcile_s):
            try:
                self._on_edge()
            except Exception:  # the catch-up poll must outlive any one bad reading
                log.exception("%s: reconcile poll failed", self.name)


def build(section: GpioGateSection) -> GateIO:
    """The gate on the Pi's GPIO pins (``backend = "gpio"``), started.

    Options (``[devices.gate.options]``):

    - ``outputs``: BCM pin per output: ``entry_lock``, ``exit_lock`` (required), ``lamp_green``,
      ``lamp_red``, ``buzzer``.
    - ``inputs``: BCM pin per input: ``entry_beam``, ``exit_beam`` (required), ``entry_door_closed``,
      ``exit_door_closed``, ``lane_presence``, ``tailgate``, ``emergency_release``.
    - ``active_low``: names of channels whose condition is a low level. With the internal pull-up
      (the default) a contact that closes to ground reads low, so list such inputs here; list
      outputs driving active-low relay boards here too.
    - ``entry_unlock_energised`` (default true) / ``exit_unlock_energised`` (default false):
      whether energising that door's relay unlocks it (a fail-secure strike) or locks it (a
      fail-safe maglock). The defaults make a dead controller mean "entry locked, exit free".
    - ``forced_grace_s`` (1.0): a door opening this soon after it locked is not "forced".
    - ``pull`` ("up", "down" or "off"; default "up"): the inputs' internal pull resistor.
    - ``bounce_s`` (0.02): input debounce time; 0 disables it.
    - ``reconcile_s`` (0.25): period of the poll that catches edges a debouncer swallowed; 0 disables.
    """
    options = section.options
    port = GpioPort(
        options.channel_map(), pull=options.pull, bounce_s=options.bounce_s, reconcile_s=options.reconcile_s
    )
    return GateIO(port, forced_grace_s=options.forced_grace_s).start()
