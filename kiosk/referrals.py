"""What the kiosk keeps for an officer about a referred traveller, when its configuration says so
(``privacy.keep_referral_details``): the biographic MRZ data, sealed under the device's data key.

Nothing here reaches the outbox, the hub or a log: the hub sees only the transaction's reason codes.
The sealed records go with their transaction when retention purges it, and with the data key at erase.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kiosk.documents.mrz import Mrz
from kiosk.sealing import Sealer
from kiosk.store import Store
from kiosk.store.records import new_id


def referral_details(mrz: Mrz, reasons: Sequence[str]) -> dict[str, Any]:
    return {
        "document_code": mrz.document_code,
        "issuing_state": mrz.issuing_state,
        "document_number": mrz.document_number,
        "surname": mrz.surname,
        "given_names": mrz.given_names,
        "nationality": mrz.nationality,
        "birth_date": mrz.birth_date.isoformat() if mrz.birth_date else None,
        "expiry_date": mrz.expiry_date.isoformat() if mrz.expiry_date else None,
        "sex": mrz.sex,
        "reasons": list(reasons),
    }


class ReferralVault:
    def __init__(self, store: Store, sealer: Sealer) -> None:
        self.store = store
        self.sealer = sealer

    def keep(self, transaction_id: str, mrz: Mrz, reasons: Sequence[str]) -> str:
        """Seal and store the details; returns the record id (the associated data of its seal)."""
        record_id = new_id()
        plaintext = json.dumps(referral_details(mrz, reasons), sort_keys=True).encode("utf-8")
        self.store.referrals.keep(record_id, transaction_id, self.sealer.seal(record_id, plaintext))
        return record_id

    def details(self, record_id: str) -> dict[str, Any] | None:
        sealed = self.store.referrals.sealed(record_id)
        if sealed is None:
            return None
        value: dict[str, Any] = json.loads(self.sealer.open(record_id, sealed))
        return value
