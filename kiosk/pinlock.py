"""The maintenance PIN: checked against its scrypt hash, with an escalating lockout after failures.

Failures, the lockout and how many lockouts came since the last success live in the store, not in
the app, so restarting the UI (or crashing it on purpose) neither resets the count nor shortens the
next lockout. Each lockout doubles the previous one up to a cap, so guessing a 6-digit PIN takes
years, and each raises an alert for the hub. Every attempt is audited; no event carries a digit.
Blocking (scrypt, SQLite writes): never call it on the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from common.pinhash import PinHash
from kiosk.store import Store

FAILURES_KEY = "ui.maintenance_pin_failures"
LOCKED_UNTIL_KEY = "ui.maintenance_locked_until"
LOCKOUTS_KEY = "ui.maintenance_lockouts"
DEMO_PIN = "000000"  # only where every device is simulated and no PIN is configured


class PinVerdict(StrEnum):
    OPEN = "open"
    WRONG = "wrong"
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True)
class PinResult:
    verdict: PinVerdict
    failures_left: int = 0
    locked_for_s: float = 0.0


@dataclass(frozen=True)
class Lockout:
    """How the pad locks: after ``max_failures`` wrong PINs, for ``first_s``, doubling up to ``max_s``."""

    max_failures: int
    first_s: float
    max_s: float

    def duration(self, lockouts: int) -> float:
        """The length of the ``lockouts``-th lockout since the last success (1 is the first)."""
        # min() before the power would overflow a float after ~1000 lockouts; the cap is reached long before.
        return min(self.max_s, self.first_s * 2 ** min(lockouts - 1, 64))


class PinLock:
    def __init__(
        self,
        store: Store,
        expected: PinHash | None,
        lockout: Lockout,
        *,
        now: Callable[[], float],
        training: Callable[[], bool],
    ) -> None:
        self.store = store
        self.expected = expected
        self.lockout = lockout
        self.now = now  # wall-clock seconds: the lockout must survive a restart
        self.training = training

    def locked_for(self) -> float:
        return max(0.0, self._meta_float(LOCKED_UNTIL_KEY) - self.now())

    def attempt(self, pin: str) -> PinResult:
        if self.expected is None:
            return PinResult(PinVerdict.DISABLED)
        remaining = self.locked_for()
        if remaining > 0:
            self._audit("maintenance_pin_refused_locked")
            return PinResult(PinVerdict.LOCKED, locked_for_s=remaining)
        if self.expected.matches(pin):
            self.store.meta.set(FAILURES_KEY, "0")
            self.store.meta.set(LOCKOUTS_KEY, "0")
            self._audit("maintenance_opened")
            return PinResult(PinVerdict.OPEN)
        failures = int(self._meta_float(FAILURES_KEY)) + 1
        if failures >= self.lockout.max_failures:
            return self._lock_out()
        self.store.meta.set(FAILURES_KEY, str(failures))
        self._audit("maintenance_pin_wrong")
        return PinResult(PinVerdict.WRONG, failures_left=self.lockout.max_failures - failures)

    def _lock_out(self) -> PinResult:
        lockouts = int(self._meta_float(LOCKOUTS_KEY)) + 1
        duration = self.lockout.duration(lockouts)
        self.store.meta.set(LOCKED_UNTIL_KEY, repr(self.now() + duration))
        self.store.meta.set(LOCKOUTS_KEY, str(lockouts))
        self.store.meta.set(FAILURES_KEY, "0")
        self._audit("maintenance_pin_locked_out")
        # Someone may be guessing at an unattended kiosk: the hub should know now, not at the next audit.
        self.store.outbox.add(
            "alert",
            {"alert": "maintenance_locked_out", "lockouts": lockouts, "locked_for_s": duration},
            training=self.training(),
        )
        return PinResult(PinVerdict.LOCKED, locked_for_s=duration)

    def _meta_float(self, key: str) -> float:
        return float(self.store.meta.get(key) or 0)

    def _audit(self, action: str) -> None:
        self.store.outbox.add("audit", {"audit": action}, training=self.training())
