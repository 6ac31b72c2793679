"""The outbox: events for the hub, numbered by ``seq``, kept until delivered and then compacted.

The lane writes events (in the same SQLite transaction as the fact they report, see
:mod:`kiosk.store.transactions`); the edge agent, a separate process with its own store, reads them
in ``seq`` order, marks them delivered on the broker's acknowledgement, and re-queues ranges the hub
reports missing. ``seq`` is AUTOINCREMENT, so a number is never reused, even after compaction.
Every event also gets an entry in the audit ledger (:mod:`kiosk.store.ledger`) in the same write;
the row keeps its ``ledger_index``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from kiosk.store import ledger
from kiosk.store.core import MAX_PAGE_ROWS, StoreCore, enum_value, page_limit, query_one
from kiosk.store.ledger_entries import make_entry
from kiosk.store.records import EventType, OutboxEvent, check_payload, dumps, from_iso, new_id, to_iso

_COLUMNS = 'seq, event_id, type, ts, "schema", payload, training, delivered_at, ledger_index'
# Keeps `IN (...)` lists well under SQLite's bound-parameter limit on old builds.
_IN_CHUNK = 500


def _event_from_row(row: Mapping[str, Any]) -> OutboxEvent:
    return OutboxEvent(
        seq=row["seq"],
        event_id=row["event_id"],
        type=EventType(row["type"]),
        ts=from_iso(row["ts"]),
        schema=row["schema"],
        payload=row["payload"],
        training=bool(row["training"]),
        delivered_at=from_iso(row["delivered_at"]) if row["delivered_at"] else None,
        ledger_index=row["ledger_index"],
    )


def _check_flags(training: object, schema: object) -> None:
    if not isinstance(training, bool):
        raise ValueError(f"training must be a bool, got {training!r}")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise ValueError(f"schema must be a positive integer, got {schema!r}")


def _last_seq(db: Database) -> int:
    # AUTOINCREMENT keeps the high-water mark here even after compaction emptied the table.
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return 0 if row is None else int(row[0])


class Outbox:
    def __init__(self, core: StoreCore) -> None:
        self._core = core

    def insert(
        self, db: Database, event_type: EventType, payload: Mapping[str, Any], *, training: bool, schema: int
    ) -> OutboxEvent:
        """Queue an event inside a write the caller holds, so it commits with the fact it reports, and
        append its audit-ledger entry in the same write."""
        check_payload(payload)
        payload_json = dumps(payload)
        event_id = new_id()
        ts = self._core.timestamp()
        # The write lock (BEGIN IMMEDIATE) is held, so no other process can take this index meanwhile.
        index = ledger.size(db)
        cursor = db.execute(
            'INSERT INTO outbox (event_id, type, ts, "schema", payload, training, ledger_index)'
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, event_type.value, ts, schema, payload_json, int(training), index),
        )
        seq = cursor.lastrowid
        if seq is None:  # pragma: no cover - sqlite3 always sets it after a successful INSERT
            raise self._core.error("outbox insert returned no seq")
        ledger.append(db, index, make_entry(index, event_type, seq, event_id, ts, payload, payload_json))
        return OutboxEvent(
            seq=seq,
            event_id=event_id,
            type=event_type,
            ts=from_iso(ts),
            schema=schema,
            payload=payload_json,
            training=training,
            ledger_index=index,
        )

    def add(
        self, type: EventType | str, payload: Mapping[str, Any], *, training: bool = False, schema: int = 1
    ) -> OutboxEvent:
        event_type = EventType(enum_value(type))
        _check_flags(training, schema)
        with self._core.write(f"add {event_type} event") as db:
            return self.insert(db, event_type, payload, training=training, schema=schema)

    def add_many(
        self,
        type: EventType | str,
        payloads: Iterable[Mapping[str, Any]],
        *,
        training: bool = False,
        schema: int = 1,
    ) -> list[OutboxEvent]:
        """Queue several events in one SQLite transaction (one fsync): all of them or none."""
        event_type = EventType(enum_value(type))
        _check_flags(training, schema)
        with self._core.write(f"add {event_type} events") as db:
            return [self.insert(db, event_type, p, training=training, schema=schema) for p in payloads]

    def pending(self, limit: int, after_seq: int | None = None) -> list[OutboxEvent]:
        """Undelivered events in seq order, at most ``limit``; page on with ``after_seq`` = last seq seen."""
        after = 0 if after_seq is None else int(after_seq)
        with self._core.read("read pending events") as db:
            rows = list(
                db.query(
                    f"SELECT {_COLUMNS} FROM outbox WHERE delivered_at IS NULL AND seq > ?"
                    " ORDER BY seq LIMIT ?",
                    (after, page_limit(limit)),
                )
            )
        return [_event_from_row(row) for row in rows]

    def get(self, seq: int) -> OutboxEvent | None:
        with self._core.read(f"read event {seq}") as db:
            row = query_one(db, f"SELECT {_COLUMNS} FROM outbox WHERE seq = ?", (int(seq),))
        return _event_from_row(row) if row else None

    def mark_delivered(self, seqs: Iterable[int]) -> int:
        """Record the broker's acknowledgement; returns how many events were newly marked (idempotent)."""
        wanted = sorted({int(seq) for seq in seqs})
        if not wanted:
            return 0
        marked = 0
        with self._core.write("mark events delivered") as db:
            delivered_at = self._core.timestamp()
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                placeholders = ", ".join("?" * len(chunk))
                cursor = db.execute(
                    "UPDATE outbox SET delivered_at = ?"
                    f" WHERE delivered_at IS NULL AND seq IN ({placeholders})",
                    (delivered_at, *chunk),
                )
                marked += cursor.rowcount
        return marked

    def last_seq(self) -> int:
        """The highest seq ever written (0 before the first event), compacted rows included."""
        with self._core.read("read last seq") as db:
            return _last_seq(db)

    def requeue(self, from_seq: int, to_seq: int) -> dict[str, int]:
        """Mark delivered events in ``[from_seq, to_seq]`` pending again, for the hub's re-send request.

        A broker that acknowledged an event and then crashed lost it; only the hub can notice (a seq
        gap). At most ``MAX_PAGE_ROWS`` seqs per call. Returns how many were ``requeued``, were still
        ``pending`` anyway, are ``compacted`` (deleted by retention: cannot be re-sent) and
        ``not_written`` (beyond the last seq).
        """
        low, high = int(from_seq), int(to_seq)
        if not 1 <= low <= high or high - low + 1 > MAX_PAGE_ROWS:
            raise ValueError(f"seq range must satisfy 1 <= from <= to and span <= {MAX_PAGE_ROWS}")
        with self._core.write("requeue events") as db:
            requeued = db.execute(
                "UPDATE outbox SET delivered_at = NULL"
                " WHERE delivered_at IS NOT NULL AND seq BETWEEN ? AND ?",
                (low, high),
            ).rowcount
            pending = int(
                db.execute(
                    "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND seq BETWEEN ? AND ?",
                    (low, high),
                ).fetchone()[0]
            )
            last = _last_seq(db)
        written = max(0, min(high, last) - low + 1)
        return {
            "requeued": requeued,
            "pending": pending - requeued,
            "compacted": written - pending,
            "not_written": high - low + 1 - written,
        }

    def backlog(self) -> int:
        with self._core.read("count backlog") as db:
            return int(db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])

    def compact(self, *, acked_through: int, delivered_before: datetime) -> int:
        """Delete events the hub has stored (seq <= its watermark ``acked_through``) and the broker
        acknowledged before ``delivered_before``; returns how many. A PUBACK alone never makes an event
        deletable: a broker may lose what it acknowledged. Seqs are never reused."""
        horizon = to_iso(delivered_before)
        with self._core.write("compact outbox") as db:
            cursor = db.execute(
                "DELETE FROM outbox WHERE seq <= ? AND delivered_at IS NOT NULL AND delivered_at < ?",
                (int(acked_through), horizon),
            )
            return cursor.rowcount

    def activity(self, since: datetime, until: datetime) -> dict[str, Any]:
        """For the metrics message: events raised per type in [since, until), and the backlog now."""
        low, high = to_iso(since), to_iso(until)
        with self._core.read("read outbox activity") as db:
            raised = {
                str(t): int(n)
                for t, n in db.execute(
                    "SELECT type, count(*) FROM outbox WHERE ts >= ? AND ts < ? GROUP BY type", (low, high)
                )
            }
            oldest = db.execute("SELECT min(ts) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
            backlog = int(db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])
        return {
            "events": raised,
            "backlog": backlog,
            "oldest_pending": None if oldest is None else from_iso(oldest),
        }
