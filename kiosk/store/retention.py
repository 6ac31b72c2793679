"""Retention: traveller transactions, their sealed referral details and hub requests are deleted once
the hub has stored the events that report them, plus a retention period.

A record is "held" while any outbox event naming it (``transaction_id`` or ``command_id`` in its
payload) is undelivered, above the hub's acknowledgement watermark, or delivered within the period: the
hub must have had it for the whole period first. An event already compacted away was stored by the hub
(compaction deletes only below the watermark), so it holds nothing. Each purge that deletes anything
leaves an ``audit`` event with the counts, in the same SQLite transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlite_utils import Database

from kiosk.store.core import StoreCore
from kiosk.store.outbox import Outbox
from kiosk.store.records import EventType, to_iso


def _held(key: str) -> str:
    """Ids named by events the hub has not had for the whole period (parameters: watermark, horizon)."""
    return (
        f"SELECT json_extract(payload, '$.{key}') FROM outbox"
        " WHERE (delivered_at IS NULL OR seq > ? OR delivered_at >= ?)"
        f" AND json_extract(payload, '$.{key}') IS NOT NULL"
    )


_EXPIRED_TRANSACTIONS = (
    "SELECT id FROM transactions WHERE status != 'in_progress' AND finished_at < ?"
    f" AND id NOT IN ({_held('transaction_id')})"
)


class Retention:
    def __init__(self, core: StoreCore, outbox: Outbox) -> None:
        self._core = core
        self._outbox = outbox

    def purge(self, *, acked_through: int, now: datetime, retention_days: int) -> dict[str, int]:
        """Delete what expired; returns the counts per table (an audit event is queued if any)."""
        horizon = to_iso(now - timedelta(days=retention_days))
        held = (int(acked_through), horizon)
        with self._core.write("purge expired records") as db:
            expired = [row[0] for row in db.execute(_EXPIRED_TRANSACTIONS, (horizon, *held))]
            counts = {
                "referrals": _delete(db, "referrals", "transaction_id", expired),
                "transactions": _delete(db, "transactions", "id", expired),
                "requests": db.execute(
                    "DELETE FROM remote_requests WHERE done_at IS NOT NULL AND done_at < ?"
                    f" AND command_id NOT IN ({_held('command_id')})",
                    (horizon, *held),
                ).rowcount,
            }
            if any(counts.values()):
                payload = {"audit": "retention_purged", "retention_days": retention_days, **counts}
                self._outbox.insert(db, EventType.AUDIT, payload, training=False, schema=1)
        return counts


def _delete(db: Database, table: str, column: str, ids: list[str]) -> int:
    deleted = 0
    # Chunks keep each IN list under SQLite's bound-parameter limit.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        deleted += db.execute(
            f"DELETE FROM {table} WHERE {column} IN ({', '.join('?' * len(chunk))})", chunk
        ).rowcount
    return deleted
