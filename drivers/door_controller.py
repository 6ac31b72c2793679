"""Door logic on top of a raw :class:`~drivers.interfaces.Gate`: the mantrap interlock, the
fail-safe state and the supervision of the doors.

Two invariants hold whatever the caller does:
- both doors are never unlocked at once (the other door is locked, and confirmed, first; both are
  read back afterwards);
- egress is never blocked: the safe state locks the entry door and frees the exit door whenever
  someone may be in the lane.

Supervision runs in :meth:`DoorController.supervise`, which :meth:`DoorController.wait_event` calls
between short waits, so it needs no thread of its own and takes its time from an injected clock:
- a door unlocked for longer than allowed raises DOOR_HELD_UNLOCKED and is relocked as soon as
  the lane is empty (never earlier: locking someone in is worse than a door left free);
- a door standing open too long (gates with door contacts) raises DOOR_HELD_OPEN;
- forced-door, tailgating and emergency-release events become alarms; an emergency release also
  puts the lane into the fail-safe state;
- a gate whose health is FAILED raises COMMUNICATION_LOST; the fail-safe state is retried with
  backoff until it is confirmed, then COMMUNICATION_RESTORED.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from common.backoff import Backoff
from drivers.gate.channels import Door
from drivers.interfaces import DeviceError, Gate, Health, HealthState, LaneEvent, Signal

log = logging.getLogger(__name__)

MAX_KEPT_ALARMS = 256


class InterlockError(RuntimeError):
    """A door could not be opened because the other one could not be confirmed locked."""


class AlarmKind(StrEnum):
    DOOR_FORCED = "door_forced"
    TAILGATING = "tailgating"
    EMERGENCY_RELEASE = "emergency_release"
    DOOR_HELD_UNLOCKED = "door_held_unlocked"
    DOOR_HELD_OPEN = "door_held_open"
    COMMUNICATION_LOST = "communication_lost"
    COMMUNICATION_RESTORED = "communication_restored"


EVENT_ALARMS = {
    LaneEvent.DOOR_FORCED: AlarmKind.DOOR_FORCED,
    LaneEvent.TAILGATING: AlarmKind.TAILGATING,
    LaneEvent.EMERGENCY_RELEASE: AlarmKind.EMERGENCY_RELEASE,
}


@dataclass(frozen=True)
class DoorAlarm:
    kind: AlarmKind
    at: float  # the controller's monotonic clock
    door: Door | None = None
    detail: str = ""


@dataclass(frozen=True)
class DoorTimings:
    # Backstops for a stalled engine; the engine's own flow timeouts are shorter.
    entry_unlocked_max_s: float = 30.0
    exit_unlocked_max_s: float = 60.0
    door_open_max_s: float = 30.0
    # Longest wait_event goes without supervising.
    slice_s: float = 0.25


@runtime_checkable
class DoorSensing(Protocol):
    """Door contacts, for gates that have them (``None``: this door has no contact)."""

    def entry_door_closed(self) -> bool | None: ...

    def exit_door_closed(self) -> bool | None: ...


class DoorController:
    def __init__(
        self,
        gate: Gate,
        timings: DoorTimings | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
    ) -> None:
        self.gate = gate
        self.timings = timings or DoorTimings()
        self._monotonic = monotonic
        self._backoff = backoff or Backoff(0.5, 10.0)
        self._alarms: deque[DoorAlarm] = deque(maxlen=MAX_KEPT_ALARMS)
        self._observers: list[Callable[[DoorAlarm], None]] = []
        self._unlocked_since: dict[Door, float | None] = {door: None for door in Door}
        self._open_since: dict[Door, float | None] = {door: None for door in Door}
        self._held_reported: set[tuple[AlarmKind, Door]] = set()
        self._comm_lost = False
        self._next_safe_attempt = 0.0

    # --- commands (the engine's) -----------------------------------------------------------------

    def open_entry(self) -> None:
        self._open(Door.ENTRY)

    def close_entry(self) -> None:
        self.gate.set_entry_unlocked(False)

    def open_exit(self) -> None:
        self._open(Door.EXIT)

    def close_exit(self) -> None:
        self.gate.set_exit_unlocked(False)

    def secure(self) -> bool:
        """Enter the safe state; returns True when the entry door is confirmed locked.

        Never raises: this runs on every failure path, including device failures.
        """
        entry_locked = self._lock_entry()
        try:
            occupied = self.gate.lane_occupied()
        except DeviceError:
            occupied = True  # unknown means someone may be inside: free the exit
        try:
            self.gate.set_exit_unlocked(occupied)
        except DeviceError as exc:
            log.error("cannot set the exit door: %s", exc.reason)
        with contextlib.suppress(DeviceError):
            self.gate.set_signal(Signal.STOP if occupied else Signal.READY)
        return entry_locked

    def fail_safe(self) -> bool:
        """Device or software fault: entry locked, exit released for egress, lamps to stop."""
        entry_locked = self._lock_entry()
        for action in (lambda: self.gate.set_exit_unlocked(True), lambda: self.gate.set_signal(Signal.STOP)):
            try:
                action()
            except DeviceError as exc:
                log.error("fail-safe action failed: %s", exc.reason)
        return entry_locked

    # --- events, alarms and supervision ------------------------------------------------------------

    def wait_event(self, timeout_s: float) -> LaneEvent | None:
        """The gate's next lane event, supervising the doors while waiting; alarms are recorded."""
        remaining = timeout_s
        while True:
            self.supervise()
            step = min(self.timings.slice_s, max(remaining, 0.0))
            event = self.gate.wait_event(step)
            if event is not None:
                self._observe(event)
                return event
            remaining -= step
            if remaining <= 0:
                return None

    def supervise(self) -> None:
        now = self._monotonic()
        self._watch_link(now)
        if self._comm_lost:
            return
        for door in Door:
            self._watch_unlocked(door, now)
            self._watch_open(door, now)

    def subscribe(self, observer: Callable[[DoorAlarm], None]) -> None:
        self._observers.append(observer)

    def take_alarms(self) -> list[DoorAlarm]:
        """Alarms raised since the last call (the newest ``MAX_KEPT_ALARMS``)."""
        alarms = list(self._alarms)
        self._alarms.clear()
        return alarms

    def health(self) -> Health:
        health = self.gate.health()
        if self._comm_lost and health.usable:
            return Health(HealthState.DEGRADED, "re-applying the safe state")
        return health

    # --- internals ---------------------------------------------------------------------------------

    def _open(self, door: Door) -> None:
        other = Door.EXIT if door is Door.ENTRY else Door.ENTRY
        self._set(other, False)
        if self._unlocked(other):
            raise InterlockError(f"{other} door did not confirm locked")
        self._set(door, True)
        if not self._unlocked(door):
            raise DeviceError(self.gate.name, f"{door} door did not confirm unlocked")
        if self._unlocked(other):
            with contextlib.suppress(DeviceError):
                self._set(door, False)
            raise InterlockError(f"{other} door unlocked itself while the {door} door opened")

    def _lock_entry(self) -> bool:
        try:
            self.gate.set_entry_unlocked(False)
            return not self.gate.entry_unlocked()
        except DeviceError as exc:
            log.error("cannot lock the entry door: %s", exc.reason)
            return False

    def _set(self, door: Door, unlocked: bool) -> None:
        setter = self.gate.set_entry_unlocked if door is Door.ENTRY else self.gate.set_exit_unlocked
        setter(unlocked)

    def _unlocked(self, door: Door) -> bool:
        return self.gate.entry_unlocked() if door is Door.ENTRY else self.gate.exit_unlocked()

    def _observe(self, event: LaneEvent) -> None:
        kind = EVENT_ALARMS.get(event)
        if kind is None:
            return
        if event is LaneEvent.EMERGENCY_RELEASE:
            self.fail_safe()
        self._raise(kind, self._monotonic())

    def _raise(self, kind: AlarmKind, now: float, door: Door | None = None, detail: str = "") -> None:
        alarm = DoorAlarm(kind, now, door, detail)
        log.warning(
            "door alarm: %s%s%s", kind, f" ({door} door)" if door else "", f": {detail}" if detail else ""
        )
        self._alarms.append(alarm)
        for observer in list(self._observers):
            try:
                observer(alarm)
            except Exception:  # an observer's bug must not stop the supervision of the doors
                log.exception("door alarm observer failed")

    def _watch_link(self, now: float) -> None:
        usable = self.gate.health().usable
        if not usable and not self._comm_lost:
            self._comm_lost = True
            self._next_safe_attempt = now
            self._raise(AlarmKind.COMMUNICATION_LOST, now, detail=self.gate.health().reason)
        if not self._comm_lost or now < self._next_safe_attempt:
            return
        if self.fail_safe() and usable:
            self._comm_lost = False
            self._backoff.reset()
            self._raise(AlarmKind.COMMUNICATION_RESTORED, now)
        else:
            self._next_safe_attempt = now + self._backoff.next_delay()

    def _watch_unlocked(self, door: Door, now: float) -> None:
        try:
            unlocked = self._unlocked(door)
        except DeviceError:
            return
        limit = self.timings.entry_unlocked_max_s if door is Door.ENTRY else self.timings.exit_unlocked_max_s
        since = self._held(AlarmKind.DOOR_HELD_UNLOCKED, door, unlocked, now, limit, self._unlocked_since)
        if since is not None and self._lane_empty():
            try:
                self._set(door, False)
                log.warning("%s door relocked after %.0f s unlocked", door, now - since)
            except DeviceError as exc:
                log.error("cannot relock the %s door: %s", door, exc.reason)

    def _watch_open(self, door: Door, now: float) -> None:
        if not isinstance(self.gate, DoorSensing):
            return
        closed = self.gate.entry_door_closed() if door is Door.ENTRY else self.gate.exit_door_closed()
        if closed is None:
            return
        self._held(
            AlarmKind.DOOR_HELD_OPEN, door, not closed, now, self.timings.door_open_max_s, self._open_since
        )

    def _held(
        self,
        kind: AlarmKind,
        door: Door,
        condition: bool,
        now: float,
        limit_s: float,
        since: dict[Door, float | None],
    ) -> float | None:
        """Track how long ``condition`` has held; alarm once per episode past ``limit_s``.

        Returns when the episode began while it is overdue, else ``None``.
        """
        if not condition:
            since[door] = None
            self._held_reported.discard((kind, door))
            return None
        began = since[door]
        if began is None:
            since[door] = now
            return None
        if now - began < limit_s:
            return None
        if (kind, door) not in self._held_reported:
            self._held_reported.add((kind, door))
            self._raise(kind, now, door, f"for {now - began:.0f} s")
        return began

    def _lane_empty(self) -> bool:
        try:
            return not self.gate.lane_occupied()
        except DeviceError:
            return False
