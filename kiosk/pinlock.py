"""The maintenance PIN: a hashed PIN from the configuration, and a lockout after repeated failures.

Failures and the lockout live in the store, not in the app, so restarting the UI (or crashing it on
purpose) does not reset them. Every attempt is audited. Blocking (SQLite writes): never call it on
the UI thread.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from kiosk.store import Store

FAILURES_KEY = "ui.maintenance_pin_failures"
LOCKED_UNTIL_KEY = "ui.maintenance_locked_until"
DEMO_PIN = "0000"  # only where every device is simulated and no PIN is configured


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


def pin_sha256(pin: str) -> str:
    return hashlib.sha256(pin.encode()).hexdigest()


class PinLock:
    def __init__(
        self,
        store: Store,
        pin_sha256_hex: str | None,
        *,
        max_failures: int,
        lockout_s: float,
        now: Callable[[], float],
        training: Callable[[], bool],
    ) -> None:
        self.store = store
        self.expected = pin_sha256_hex
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.now = now  # wall-clock seconds: the lockout must survive a restart
        self.training = training

    def locked_for(self) -> float:
        until = float(self.store.meta.get(LOCKED_UNTIL_KEY) or 0.0)
        return max(0.0, until - self.now())

    def attempt(self, pin: str) -> PinResult:
        if self.expected is None:
            return PinResult(PinVerdict.DISABLED)
        remaining = self.locked_for()
        if remaining > 0:
            self._audit("maintenance_pin_refused_locked")
            return PinResult(PinVerdict.LOCKED, locked_for_s=remaining)
        if hmac.compare_digest(pin_sha256(pin), self.expected):
            self.store.meta.set(FAILURES_KEY, "0")
            self._audit("maintenance_opened")
            return PinResult(PinVerdict.OPEN)
        failures = int(self.store.meta.get(FAILURES_KEY) or 0) + 1
        if failures >= self.max_failures:
            self.store.meta.set(LOCKED_UNTIL_KEY, repr(self.now() + self.lockout_s))
            self.store.meta.set(FAILURES_KEY, "0")
            self._audit("maintenance_pin_locked_out")
            return PinResult(PinVerdict.LOCKED, locked_for_s=self.lockout_s)
        self.store.meta.set(FAILURES_KEY, str(failures))
        self._audit("maintenance_pin_wrong")
        return PinResult(PinVerdict.WRONG, failures_left=self.max_failures - failures)

    def _audit(self, action: str) -> None:
        self.store.outbox.add("audit", {"audit": action}, training=self.training())
