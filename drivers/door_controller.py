"""Door logic on top of a raw :class:`~drivers.interfaces.Gate`: the mantrap interlock and the
fail-safe state.

Two invariants hold whatever the caller does:
- both doors are never unlocked at once (the other door is locked, and confirmed, first);
- egress is never blocked: the safe state locks the entry door and frees the exit door whenever
  someone may be in the lane.
"""

from __future__ import annotations

import contextlib
import logging

from drivers.interfaces import DeviceError, Gate, Signal

log = logging.getLogger(__name__)


class InterlockError(RuntimeError):
    """A door could not be opened because the other one could not be confirmed locked."""


class DoorController:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def open_entry(self) -> None:
        self._lock_confirmed(exit_door=True)
        self.gate.set_entry_unlocked(True)

    def close_entry(self) -> None:
        self.gate.set_entry_unlocked(False)

    def open_exit(self) -> None:
        self._lock_confirmed(exit_door=False)
        self.gate.set_exit_unlocked(True)

    def close_exit(self) -> None:
        self.gate.set_exit_unlocked(False)

    def secure(self) -> bool:
        """Enter the safe state; returns True when the entry door is confirmed locked.

        Never raises: this runs on every failure path, including device failures.
        """
        entry_locked = False
        try:
            self.gate.set_entry_unlocked(False)
            entry_locked = not self.gate.entry_unlocked()
        except DeviceError as exc:
            log.error("cannot lock the entry door: %s", exc.reason)
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
        entry_locked = False
        try:
            self.gate.set_entry_unlocked(False)
            entry_locked = not self.gate.entry_unlocked()
        except DeviceError as exc:
            log.error("cannot lock the entry door: %s", exc.reason)
        for action in (lambda: self.gate.set_exit_unlocked(True), lambda: self.gate.set_signal(Signal.STOP)):
            try:
                action()
            except DeviceError as exc:
                log.error("fail-safe action failed: %s", exc.reason)
        return entry_locked

    def _lock_confirmed(self, *, exit_door: bool) -> None:
        setter = self.gate.set_exit_unlocked if exit_door else self.gate.set_entry_unlocked
        reader = self.gate.exit_unlocked if exit_door else self.gate.entry_unlocked
        setter(False)
        if reader():
            raise InterlockError(f"{'exit' if exit_door else 'entry'} door did not confirm locked")
