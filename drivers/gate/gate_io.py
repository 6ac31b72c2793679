"""The gate's IO layer: a :class:`~drivers.interfaces.Gate` on top of any port that moves raw bits.

A port (GPIO pins, a Modbus relay module) only writes outputs with read-back and reports input
snapshots. This layer maps them through the :class:`ChannelMap`, runs the lane rules, queues
events and acts on its own where waiting for the engine would be wrong:

- emergency release: the entry is locked and the exit unlocked at once, and the exit stays
  unlocked for as long as the input is active, whatever the engine asks;
- interlock: the entry is never unlocked while the exit is, and unlocking the exit locks the entry
  first (if the entry cannot be locked the exit is still unlocked: egress beats the interlock);
- a port that got its device back after a loss applies the safe state (entry locked, exit free)
  before anything else.

Crossing events (entered, exited, retreated) belong to the door opening that allowed them: a new
unlock command discards crossings nobody took, so a traveller never inherits the previous one's
exit. Alarms (forced door, tailgating, emergency) stay queued until read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from drivers.gate.channels import LOCK_OUTPUT, ChannelMap, Door, Input, Output
from drivers.gate.lane_rules import LaneRules
from drivers.interfaces import DeviceError, Health, HealthState, LaneEvent, Signal

log = logging.getLogger(__name__)

CROSSINGS = frozenset({LaneEvent.PERSON_ENTERED, LaneEvent.PERSON_EXITED, LaneEvent.PERSON_RETREATED})
MAX_QUEUED_EVENTS = 64  # a chattering sensor must not grow memory without bound
SIGNAL_LAMPS: Mapping[Signal, frozenset[Output]] = {
    Signal.READY: frozenset({Output.LAMP_GREEN}),
    Signal.GO: frozenset({Output.LAMP_GREEN}),
    Signal.BUSY: frozenset({Output.LAMP_RED}),
    Signal.STOP: frozenset({Output.LAMP_RED}),
    Signal.OFF: frozenset(),
}


class PortListener(Protocol):
    """What a port reports to the IO layer, always from outside the port's own locks."""

    def inputs_changed(self, raw: Mapping[Input, bool]) -> None: ...

    def link_lost(self) -> None: ...

    def link_restored(self, raw: Mapping[Input, bool]) -> None:
        """The device answers again (or for the first time); its output state is unknown."""
        ...


class IoPort(Protocol):
    name: str
    channels: ChannelMap

    def start(self, listener: PortListener) -> None: ...

    def write_output(self, output: Output, raw: bool) -> None:
        """Set an output and confirm it by read-back; DeviceError when that fails."""
        ...

    def output_state(self, output: Output) -> bool:
        """The last confirmed raw state; DeviceError when it is not known."""
        ...

    def health(self) -> Health: ...

    def close(self) -> None: ...


class GateIO:
    def __init__(
        self,
        port: IoPort,
        *,
        forced_grace_s: float = 1.0,
        name: str = "gate",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.port = port
        self.channels = port.channels
        self._monotonic = monotonic
        self._rules = LaneRules(frozenset(self.channels.inputs), forced_grace_s=forced_grace_s)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._events: deque[LaneEvent] = deque(maxlen=MAX_QUEUED_EVENTS)
        self._locked_since: dict[Door, float | None] = {door: None for door in Door}
        self._ignored_exit_lock = False
        self.events_dropped = 0

    def start(self) -> GateIO:
        with self._lock:
            for door in Door:
                self._locked_since[door] = self._observed_locked_since(door)
        self.port.start(self)
        return self

    # --- Gate interface ------------------------------------------------------------------------

    def health(self) -> Health:
        health = self.port.health()
        if health.state is HealthState.OK and self._rules.emergency:
            return Health(HealthState.DEGRADED, "emergency release active")
        return health

    def close(self) -> None:
        self.port.close()
        with self._changed:
            self._changed.notify_all()

    def set_entry_unlocked(self, unlocked: bool) -> None:
        with self._lock:
            if unlocked:
                if self._rules.emergency:
                    raise DeviceError(self.name, "emergency release active: the entry stays locked")
                if self._is_unlocked(Door.EXIT):
                    raise DeviceError(self.name, "interlock: the exit door is unlocked")
            self._set_lock(Door.ENTRY, unlocked)

    def set_exit_unlocked(self, unlocked: bool) -> None:
        with self._lock:
            if not unlocked and self._rules.emergency:
                if not self._ignored_exit_lock:
                    log.warning("%s: exit lock refused while the emergency release is active", self.name)
                    self._ignored_exit_lock = True
                return
            if unlocked and self._is_unlocked(Door.ENTRY):
                try:
                    self._set_lock(Door.ENTRY, False)
                except DeviceError as exc:
                    log.critical("%s: entry will not lock (%s); exit unlocked anyway", self.name, exc.reason)
            self._set_lock(Door.EXIT, unlocked)

    def entry_unlocked(self) -> bool:
        return self._unlocked_state(Door.ENTRY)

    def exit_unlocked(self) -> bool:
        return self._unlocked_state(Door.EXIT)

    def lane_occupied(self) -> bool:
        self._raise_if_failed()
        with self._lock:
            return self._rules.occupied

    def set_signal(self, signal: Signal) -> None:
        lit = SIGNAL_LAMPS[signal]
        with self._lock:
            for lamp in (Output.LAMP_GREEN, Output.LAMP_RED):
                if lamp in self.channels.outputs:
                    self.port.write_output(lamp, self.channels.raw_output(lamp, lamp in lit))

    def wait_event(self, timeout_s: float) -> LaneEvent | None:
        # Real time, whatever clock the rules use: the condition below waits in real time.
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                if self._events:
                    return self._events.popleft()
                self._raise_if_failed()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    # --- beyond the interface: door contacts, for the door controller ---------------------------

    def entry_door_closed(self) -> bool | None:
        with self._lock:
            return self._rules.door_closed(Door.ENTRY)

    def exit_door_closed(self) -> bool | None:
        with self._lock:
            return self._rules.door_closed(Door.EXIT)

    # --- PortListener ---------------------------------------------------------------------------

    def inputs_changed(self, raw: Mapping[Input, bool]) -> None:
        with self._changed:
            logical = self.channels.logical_inputs(raw)
            events = self._rules.update(logical, self._locked_since, self._monotonic())
            self._react()
            self._queue(events)

    def link_lost(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def link_restored(self, raw: Mapping[Input, bool]) -> None:
        """Safe state first; raises DeviceError (the port retries) when it could not be applied."""
        with self._changed:
            events = self._rules.resync(self.channels.logical_inputs(raw))
            errors = self._enforce_safe_state(rewrite=True)
            self._queue(events)
            if errors:
                raise errors[0]
            self.set_signal(Signal.STOP)
            log.warning("%s: link restored; safe state applied (entry locked, exit free)", self.name)
            self._react()

    # --- internals ------------------------------------------------------------------------------

    def _queue(self, events: list[LaneEvent]) -> None:
        for event in events:
            log.info("%s: %s", self.name, event)
            if len(self._events) == self._events.maxlen:
                self.events_dropped += 1
            self._events.append(event)
        if events:
            self._changed.notify_all()

    def _react(self) -> None:
        """What the IO layer does by itself after the rules saw new inputs."""
        if self._rules.emergency:
            for error in self._enforce_safe_state():
                log.critical("%s: emergency release: %s", self.name, error.reason)
        else:
            self._ignored_exit_lock = False
        if Output.BUZZER in self.channels.outputs:
            raw = self.channels.raw_output(Output.BUZZER, self._rules.alarm)
            try:
                if self._confirmed_raw(Output.BUZZER) != raw:
                    self.port.write_output(Output.BUZZER, raw)
            except DeviceError as exc:
                log.error("%s: buzzer: %s", self.name, exc.reason)

    def _enforce_safe_state(self, *, rewrite: bool = False) -> list[DeviceError]:
        """Entry locked, then exit unlocked; the exit is freed even when the entry fails to lock.

        ``rewrite`` writes both locks even where the confirmed state already matches (after a lost
        link the device may have been reset behind our back).
        """
        errors = []
        for door, unlocked in ((Door.ENTRY, False), (Door.EXIT, True)):
            try:
                if rewrite or self._is_unlocked(door) != unlocked:
                    self._set_lock(door, unlocked)
            except DeviceError as exc:
                errors.append(exc)
        return errors

    def _set_lock(self, door: Door, unlocked: bool) -> None:
        if unlocked:
            self._discard_crossings()
        self.port.write_output(LOCK_OUTPUT[door], self.channels.lock_raw(door, unlocked))
        was_locked = self._locked_since[door] is not None
        if unlocked:
            self._locked_since[door] = None
        elif not was_locked:
            self._locked_since[door] = self._monotonic()

    def _discard_crossings(self) -> None:
        stale = [event for event in self._events if event in CROSSINGS]
        if stale:
            log.info("%s: %d crossing event(s) nobody took were discarded", self.name, len(stale))
            kept = [event for event in self._events if event not in CROSSINGS]
            self._events.clear()
            self._events.extend(kept)

    def _is_unlocked(self, door: Door) -> bool:
        """The confirmed state; unknown counts as unlocked, so the interlock errs on the safe side."""
        try:
            return self._unlocked_state(door)
        except DeviceError:
            return True

    def _confirmed_raw(self, output: Output) -> bool | None:
        try:
            return self.port.output_state(output)
        except DeviceError:
            return None

    def _unlocked_state(self, door: Door) -> bool:
        return self.channels.lock_unlocked(door, self.port.output_state(LOCK_OUTPUT[door]))

    def _observed_locked_since(self, door: Door) -> float | None:
        try:
            return None if self._unlocked_state(door) else self._monotonic()
        except DeviceError:
            return None

    def _raise_if_failed(self) -> None:
        health = self.port.health()
        if health.state is HealthState.FAILED:
            raise DeviceError(self.name, health.reason or "failed")
