"""Sealed referral records: personal details an officer needs for a referred traveller, stored only as
AES-GCM ciphertext (sealed by :class:`kiosk.referrals.ReferralVault`; the store never sees clear text)."""

from __future__ import annotations

from kiosk.store.core import StoreCore


class SealedReferrals:
    def __init__(self, core: StoreCore) -> None:
        self._core = core

    def keep(self, record_id: str, transaction_id: str, sealed: bytes) -> None:
        with self._core.write("keep a sealed referral") as db:
            db.execute(
                "INSERT INTO referrals (id, transaction_id, created_at, sealed) VALUES (?, ?, ?, ?)",
                (record_id, transaction_id, self._core.timestamp(), sealed),
            )

    def sealed(self, record_id: str) -> bytes | None:
        with self._core.read("read a sealed referral") as db:
            row = db.execute("SELECT sealed FROM referrals WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def of_transaction(self, transaction_id: str) -> list[str]:
        """Record ids kept for one transaction, oldest first."""
        with self._core.read("list sealed referrals") as db:
            rows = db.execute(
                "SELECT id FROM referrals WHERE transaction_id = ? ORDER BY created_at, id", (transaction_id,)
            ).fetchall()
        return [str(row[0]) for row in rows]
