"""The ledger check a kiosk runs before it serves: verify everything, then sign a head over it.

A ledger that does not verify keeps the lane out of service (the engine's ``ledger_problem``), which
raises the ``out_of_service`` alert naming the first mismatch. No head is signed over a ledger that
does not verify: the device must not vouch for a history it cannot check.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.tree_head import key_id
from kiosk.store import Store
from kiosk.store.ledger_verify import VerifyResult, verify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartupCheck:
    result: VerifyResult
    seconds: float

    @property
    def problem(self) -> str | None:
        """The operator-facing reason to stay closed, or ``None``."""
        return None if self.result.ok else f"audit ledger does not verify: {self.result.problem}"


def check_at_start(store: Store, device_key: Ed25519PrivateKey) -> StartupCheck:
    public = device_key.public_key()
    started = time.perf_counter()
    result = verify(store.ledger, {key_id(public): public})
    seconds = time.perf_counter() - started
    if result.ok:
        store.ledger.sign_head(device_key)
        log.info("audit ledger verified in %.3f s: %s", seconds, result.summary())
    else:
        log.error("audit ledger verification failed in %.3f s: %s", seconds, result.problem)
    return StartupCheck(result=result, seconds=seconds)
