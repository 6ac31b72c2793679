"""The kiosk's local SQLite store: transaction records, the outbox, reference data and meta.

Durability: WAL journal with ``synchronous=FULL``, so every committed transaction is on the medium
before ``commit`` returns - a kill -9 or power cut loses nothing the engine was told is stored.
Concurrency: one connection per :class:`Store`, serialised by a lock (the engine calls from worker
threads); other processes (the edge agent) use their own connections, and ``busy_timeout`` makes
writers queue instead of failing. Write transactions start with ``BEGIN IMMEDIATE`` so a
read-then-write transaction never hits SQLITE_BUSY on lock upgrade, where no busy handler helps.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError
from sqlite_utils import Database

from kiosk.reference import Dataset, EVisaRecord, PolicyRules, WatchlistEntry
from kiosk.store import migrations
from kiosk.store.errors import (
    ReferenceDataError,
    StoreError,
    TransactionStateError,
    UnknownTransactionError,
    store_error,
)
from kiosk.store.records import (
    DECISIONS,
    DatasetInfo,
    EventType,
    OutboxEvent,
    TransactionStatus,
    check_payload,
    dumps,
    from_iso,
    new_id,
    to_iso,
)
from kiosk.store.reference_data import NATIONALITY_PATTERN, validate_dataset

DEFAULT_BUSY_TIMEOUT_S = 5.0
# Upper bound on rows per read call: pages stay bounded in memory on a Pi.
MAX_PAGE_ROWS = 10_000
# Bound the -wal file after checkpoints; an SD card should not keep a large WAL around.
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
# Keeps `IN (...)` lists well under SQLite's bound-parameter limit on old builds.
_IN_CHUNK = 500

_VERSION_COLUMNS = {"kiosk": "kiosk_version", "config": "config_version", "model": "model_version"}
_DATASET_NAMES = frozenset(d.value for d in Dataset)
_NATIONALITY = re.compile(NATIONALITY_PATTERN)
# Reason codes are identifiers, never free text (free text is where a name could slip in).
_REASON = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SHORT_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")
_REF_TABLES = {
    Dataset.EVISA: "ref_evisa",
    Dataset.VISA_EXEMPT: "ref_visa_exempt",
    Dataset.WATCHLIST: "ref_watchlist",
    Dataset.POLICY: "ref_policy",
}
_OUTBOX_COLUMNS = 'seq, event_id, type, ts, "schema", payload, training, delivered_at'


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _text(value: object) -> object:
    # str() of a (str, Enum) mixin gives "Cls.MEMBER"; the value is what must be stored.
    return value.value if isinstance(value, Enum) else value


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_ROWS:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE_ROWS}, got {limit!r}")
    return limit


def _one(db: Database, sql: str, params: Sequence[object]) -> dict[str, Any] | None:
    # Fully consumed, so no half-read statement keeps a WAL read snapshot open.
    rows = list(db.query(sql, params))
    return rows[0] if rows else None


def _decision(decision: object) -> str:
    value = _text(decision)
    if not isinstance(value, str) or value not in DECISIONS:
        raise ValueError(f"decision {decision!r} is not one of {sorted(DECISIONS)}")
    return value


def _reasons(reasons: object) -> list[str]:
    if isinstance(reasons, str | bytes) or not isinstance(reasons, Sequence):
        raise ValueError(f"reasons must be a list of reason codes, got {reasons!r}")
    codes = [_optional_code("reason", reason, _REASON) for reason in reasons]
    if None in codes:
        raise ValueError(f"reasons must not contain None, got {reasons!r}")
    return [code for code in codes if code is not None]


def _optional_code(name: str, value: object, pattern: re.Pattern[str]) -> str | None:
    value = _text(value)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{name} {value!r} is not a valid code")
    return value


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
    )


def _transaction_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    record = dict(row)
    for column in ("reasons", "stage_ms", "reference_versions", "provisional_reasons"):
        if record[column] is not None:
            record[column] = json.loads(record[column])
    record["training"] = bool(record["training"])
    return record


class Store:
    """The local store. Open with :meth:`Store.open`; implements :class:`kiosk.reference.ReferenceLookup`."""

    def __init__(self, db: Database, path: Path, *, now: Callable[[], datetime] = _utc_now) -> None:
        self._db: Database | None = db
        self._path = path
        self._now = now
        # Re-entrant so a public method may call another's locked helper without deadlocking.
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        now: Callable[[], datetime] | None = None,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        max_bytes: int | None = None,
        check_integrity: bool = True,
    ) -> Store:
        """Open (creating if absent) and migrate the store at ``path``.

        The parent directory must already exist and be writable: creating it here would hide a
        misconfigured data directory, which the operator must see. ``now`` supplies record times
        (pass a simulated clock's ``now``). ``max_bytes`` caps the database size (SQLite
        ``max_page_count``) so a runaway outbox fails with a clear error before it fills the card.
        ``check_integrity`` runs ``PRAGMA quick_check`` first, so corruption is found at start-up
        rather than in the middle of a traveller's transaction.
        """
        path = Path(path)
        cls._check_location(path)
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout_s, check_same_thread=False)
        except sqlite3.Error as exc:
            raise store_error(path, "open", exc) from exc
        try:
            db = Database(conn, execute_plugins=False)
            cls._configure(db, path, busy_timeout_s, max_bytes)
            if check_integrity:
                cls._quick_check(db, path)
            migrations.migrate(db, path)
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(path, "open", exc) from exc
        except BaseException:
            conn.close()
            raise
        return cls(db, path, now=now or _utc_now)

    @staticmethod
    def _check_location(path: Path) -> None:
        directory = path.parent
        access_kwargs = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
        if not directory.exists():
            raise StoreError(
                f"store {path}: directory {directory} does not exist (create it, or fix the data directory "
                "in the configuration)",
                path=path,
            )
        if not directory.is_dir():
            raise StoreError(f"store {path}: {directory} is not a directory", path=path)
        # WAL needs to create the -wal and -shm files next to the database, even to read it.
        if not os.access(directory, os.W_OK | os.X_OK, **access_kwargs):
            raise StoreError(
                f"store {path}: directory {directory} is not writable (read-only file system or "
                "permissions); the store needs to create its database and journal files there",
                path=path,
            )
        if path.exists():
            if not path.is_file():
                raise StoreError(f"store {path}: exists but is not a regular file", path=path)
            if not os.access(path, os.R_OK | os.W_OK, **access_kwargs):
                raise StoreError(f"store {path}: database file is not readable and writable", path=path)

    @staticmethod
    def _configure(db: Database, path: Path, busy_timeout_s: float, max_bytes: int | None) -> None:
        db.execute(f"PRAGMA busy_timeout = {max(0, int(busy_timeout_s * 1000))}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"store {path}: cannot enable WAL journal mode (got {mode!r})", path=path)
        # Per connection, not persistent: every connection (this one, the edge agent's) must set it.
        db.execute("PRAGMA synchronous = FULL")
        db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
        if max_bytes is not None:
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            pages = max(1, int(max_bytes) // page_size)
            db.execute(f"PRAGMA max_page_count = {pages}")

    @staticmethod
    def _quick_check(db: Database, path: Path) -> None:
        results = [row[0] for row in db.execute("PRAGMA quick_check(5)").fetchall()]
        if results != ["ok"]:
            raise StoreError(f"store {path}: database file is corrupt: {'; '.join(results)}", path=path)

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                try:
                    db.close()
                except sqlite3.Error as exc:
                    raise store_error(self._path, "close", exc) from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _live_db(self) -> Database:
        if self._db is None:
            raise StoreError(f"store {self._path}: already closed", path=self._path)
        return self._db

    def _timestamp(self) -> str:
        return to_iso(self._now())

    @contextmanager
    def _read(self, action: str) -> Iterator[Database]:
        with self._lock:
            db = self._live_db()
            try:
                yield db
            except sqlite3.Error as exc:
                raise store_error(self._path, action, exc) from exc

    @contextmanager
    def _write(self, action: str) -> Iterator[Database]:
        """One ``BEGIN IMMEDIATE`` transaction: everything inside commits together or not at all."""
        with self._lock:
            db = self._live_db()
            conn = db.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    conn.execute("COMMIT")
                except BaseException as exc:
                    self._rollback(conn, exc)
                    raise
            except sqlite3.Error as exc:
                raise store_error(self._path, action, exc) from exc

    @staticmethod
    def _rollback(conn: sqlite3.Connection, original: BaseException) -> None:
        # SQLite may already have rolled back (e.g. on SQLITE_FULL); a failing rollback must not hide
        # the error that caused it.
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as rollback_exc:
            original.add_note(f"rollback also failed: {rollback_exc}")

    def _insert_event(
        self, db: Database, event_type: EventType, payload: Mapping[str, Any], *, training: bool, schema: int
    ) -> OutboxEvent:
        check_payload(payload)
        payload_json = dumps(payload)
        event_id = new_id()
        ts = self._timestamp()
        cursor = db.execute(
            'INSERT INTO outbox (event_id, type, ts, "schema", payload, training) VALUES (?, ?, ?, ?, ?, ?)',
            (event_id, event_type.value, ts, schema, payload_json, int(training)),
        )
        seq = cursor.lastrowid
        if seq is None:  # pragma: no cover - sqlite3 always sets it after a successful INSERT
            raise StoreError(f"store {self._path}: outbox insert returned no seq", path=self._path)
        return OutboxEvent(
            seq=seq,
            event_id=event_id,
            type=event_type,
            ts=from_iso(ts),
            schema=schema,
            payload=payload_json,
            training=training,
        )

    # ------------------------------------------------------------------ transactions

    def begin_transaction(self, *, versions: Mapping[str, str], training: bool) -> str:
        """Record the start of a traveller transaction (committed at once); return its UUIDv7 id.

        ``versions`` keys: ``kiosk``, ``config``, ``model`` (to their columns) and optionally dataset
        names, which override the store's own record of the reference dataset versions in force.
        """
        if not isinstance(training, bool):
            raise ValueError(f"training must be a bool, got {training!r}")
        columns: dict[str, str] = {}
        reference_overrides: dict[str, str] = {}
        for key, value in versions.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"version {key!r} must be a non-empty string, got {value!r}")
            if key in _VERSION_COLUMNS:
                columns[_VERSION_COLUMNS[key]] = value
            elif key in _DATASET_NAMES:
                reference_overrides[key] = value
            else:
                known = ", ".join([*_VERSION_COLUMNS, *sorted(_DATASET_NAMES)])
                raise ValueError(f"unknown version key {key!r} (known: {known})")
        txn_id = new_id()
        with self._write("begin transaction") as db:
            references = {**self._dataset_versions(db), **reference_overrides}
            db.execute(
                "INSERT INTO transactions (id, started_at, status, reference_versions, training,"
                " kiosk_version, config_version, model_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    txn_id,
                    self._timestamp(),
                    TransactionStatus.IN_PROGRESS.value,
                    dumps(references),
                    int(training),
                    columns.get("kiosk_version"),
                    columns.get("config_version"),
                    columns.get("model_version"),
                ),
            )
        return txn_id

    def finish_transaction(
        self,
        txn_id: str,
        *,
        decision: str,
        reasons: Sequence[str],
        stage_ms: Mapping[str, float],
        document_format: str | None,
        nationality: str | None,
        entitlement: str | None,
        face_score: float | None,
        event_payload: Mapping[str, Any],
    ) -> OutboxEvent:
        """Close the transaction and queue its ``transaction`` event, atomically (both or neither).

        Decision ``ABORTED`` gives status ``aborted``, any other ``finished``. The event payload gets
        ``transaction_id`` added when absent; a different one is refused.
        """
        decision_value = _decision(decision)
        reason_codes = _reasons(reasons)
        if not isinstance(stage_ms, Mapping):
            raise ValueError(f"stage_ms must be a mapping of stage to milliseconds, got {stage_ms!r}")
        stages: dict[str, int | float] = {}
        for stage, ms in stage_ms.items():
            stage_name = _optional_code("stage", stage, _REASON)
            if stage_name is None:
                raise ValueError("stage_ms keys must be stage names, not None")
            if isinstance(ms, bool) or not isinstance(ms, numbers.Real) or not math.isfinite(ms) or ms < 0:
                raise ValueError(f"stage_ms[{stage!r}] must be a finite, non-negative number, got {ms!r}")
            stages[stage_name] = int(ms) if isinstance(ms, numbers.Integral) else float(ms)
        nationality_code = _optional_code("nationality", nationality, _NATIONALITY)
        format_code = _optional_code("document_format", document_format, _SHORT_CODE)
        entitlement_code = _optional_code("entitlement", entitlement, _SHORT_CODE)
        score: float | None = None
        if face_score is not None:
            # numbers.Real, not float: numpy scores (float32) are registered there but are not floats.
            if isinstance(face_score, bool) or not isinstance(face_score, numbers.Real):
                raise ValueError(f"face_score must be a number, got {face_score!r}")
            score = float(face_score)
            if not math.isfinite(score):
                raise ValueError(f"face_score must be finite, got {face_score!r}")
        check_payload(event_payload, where="event_payload")
        payload = dict(event_payload)
        if payload.setdefault("transaction_id", txn_id) != txn_id:
            raise ValueError(f"event_payload transaction_id {payload['transaction_id']!r} is not {txn_id!r}")
        status = TransactionStatus.ABORTED if decision_value == "ABORTED" else TransactionStatus.FINISHED

        with self._write(f"finish transaction {txn_id}") as db:
            row = self._in_progress(db, txn_id)
            db.execute(
                "UPDATE transactions SET finished_at = ?, status = ?, decision = ?, reasons = ?,"
                " stage_ms = ?, document_format = ?, nationality = ?, entitlement = ?, face_score = ?"
                " WHERE id = ?",
                (
                    self._timestamp(),
                    status.value,
                    decision_value,
                    dumps(reason_codes),
                    dumps(stages),
                    format_code,
                    nationality_code,
                    entitlement_code,
                    score,
                    txn_id,
                ),
            )
            # Same SQLite transaction as the UPDATE: a failure here (bad payload, full disk) undoes both.
            return self._insert_event(
                db, EventType.TRANSACTION, payload, training=bool(row["training"]), schema=1
            )

    def record_decision(self, txn_id: str, *, decision: str, reasons: Sequence[str]) -> None:
        """Durably note the decision before the lane acts on it (e.g. before the entry door opens).

        The transaction stays ``in_progress`` with ``decision`` NULL; this goes to
        ``provisional_decision``/``provisional_reasons``, and may be overwritten until the finish. If
        this write fails (full disk), the caller must not act on the decision.
        """
        decision_value = _decision(decision)
        reason_codes = _reasons(reasons)
        with self._write(f"record decision of transaction {txn_id}") as db:
            self._in_progress(db, txn_id)
            db.execute(
                "UPDATE transactions SET provisional_decision = ?, provisional_reasons = ?, decided_at = ?"
                " WHERE id = ?",
                (decision_value, dumps(reason_codes), self._timestamp(), txn_id),
            )

    def _in_progress(self, db: Database, txn_id: str) -> dict[str, Any]:
        row = _one(db, "SELECT status, training FROM transactions WHERE id = ?", (txn_id,))
        if row is None:
            raise UnknownTransactionError(f"store {self._path}: no transaction {txn_id!r}", path=self._path)
        if row["status"] != TransactionStatus.IN_PROGRESS:
            raise TransactionStateError(
                f"store {self._path}: transaction {txn_id} is already {row['status']}", path=self._path
            )
        return row

    def abort_unfinished(self) -> list[str]:
        """Mark every ``in_progress`` transaction aborted (reason INTERRUPTED) and queue an alert each.

        For start-up after a crash, before the engine begins new transactions: it does not know which
        in-progress rows belong to a live caller.
        """
        with self._write("abort unfinished transactions") as db:
            rows = list(
                db.query(
                    "SELECT id, training, provisional_decision FROM transactions"
                    " WHERE status = 'in_progress'"
                    " ORDER BY started_at, id"
                )
            )
            finished_at = self._timestamp()
            for row in rows:
                db.execute(
                    "UPDATE transactions SET status = 'aborted', decision = 'ABORTED', reasons = ?,"
                    " finished_at = ? WHERE id = ?",
                    (dumps(["INTERRUPTED"]), finished_at, row["id"]),
                )
                alert: dict[str, Any] = {"alert": "transaction_interrupted", "transaction_id": row["id"]}
                if row["provisional_decision"] is not None:
                    # An officer needs to know whether the lane had already decided to open.
                    alert["provisional_decision"] = row["provisional_decision"]
                self._insert_event(db, EventType.ALERT, alert, training=bool(row["training"]), schema=1)
        return [row["id"] for row in rows]

    def transaction(self, txn_id: str) -> dict[str, Any]:
        with self._read(f"read transaction {txn_id}") as db:
            row = _one(db, "SELECT * FROM transactions WHERE id = ?", (txn_id,))
        if row is None:
            raise UnknownTransactionError(f"store {self._path}: no transaction {txn_id!r}", path=self._path)
        return _transaction_from_row(row)

    def transactions(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent transactions, newest first."""
        with self._read("list transactions") as db:
            rows = list(
                db.query(
                    "SELECT * FROM transactions ORDER BY started_at DESC, id DESC LIMIT ?", (_limit(limit),)
                )
            )
        return [_transaction_from_row(row) for row in rows]

    def count_transactions(self) -> int:
        with self._read("count transactions") as db:
            return int(db.execute("SELECT count(*) FROM transactions").fetchone()[0])

    # ------------------------------------------------------------------ outbox

    def add_event(
        self, type: EventType | str, payload: Mapping[str, Any], *, training: bool = False, schema: int = 1
    ) -> OutboxEvent:
        event_type = EventType(_text(type))
        if not isinstance(training, bool):
            raise ValueError(f"training must be a bool, got {training!r}")
        if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
            raise ValueError(f"schema must be a positive integer, got {schema!r}")
        with self._write(f"add {event_type} event") as db:
            return self._insert_event(db, event_type, payload, training=training, schema=schema)

    def pending_events(self, limit: int, after_seq: int | None = None) -> list[OutboxEvent]:
        """Undelivered events in seq order, at most ``limit``; page on with ``after_seq`` = last seq seen."""
        after = 0 if after_seq is None else int(after_seq)
        with self._read("read pending events") as db:
            rows = list(
                db.query(
                    f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE delivered_at IS NULL AND seq > ?"
                    " ORDER BY seq LIMIT ?",
                    (after, _limit(limit)),
                )
            )
        return [_event_from_row(row) for row in rows]

    def event(self, seq: int) -> OutboxEvent | None:
        with self._read(f"read event {seq}") as db:
            row = _one(db, f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE seq = ?", (int(seq),))
        return _event_from_row(row) if row else None

    def mark_delivered(self, seqs: Iterable[int]) -> int:
        """Record the broker's acknowledgement; returns how many events were newly marked (idempotent)."""
        wanted = sorted({int(seq) for seq in seqs})
        if not wanted:
            return 0
        marked = 0
        with self._write("mark events delivered") as db:
            delivered_at = self._timestamp()
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
        with self._read("read last seq") as db:
            # AUTOINCREMENT keeps the high-water mark here even after compaction emptied the table.
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return 0 if row is None else int(row[0])

    def requeue_events(self, from_seq: int, to_seq: int) -> dict[str, int]:
        """Mark delivered events in ``[from_seq, to_seq]`` pending again, for the hub's re-send request.

        A broker that acknowledged an event and then crashed lost it; only the hub can notice (a seq
        gap). At most ``MAX_PAGE_ROWS`` seqs per call. Returns how many were ``requeued``, were still
        ``pending`` anyway, are ``compacted`` (deleted by retention: cannot be re-sent) and
        ``not_written`` (beyond the last seq).
        """
        low, high = int(from_seq), int(to_seq)
        if not 1 <= low <= high or high - low + 1 > MAX_PAGE_ROWS:
            raise ValueError(f"seq range must satisfy 1 <= from <= to and span <= {MAX_PAGE_ROWS}")
        with self._write("requeue events") as db:
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
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        written = max(0, min(high, 0 if row is None else int(row[0])) - low + 1)
        return {
            "requeued": requeued,
            "pending": pending - requeued,
            "compacted": written - pending,
            "not_written": high - low + 1 - written,
        }

    def backlog(self) -> int:
        with self._read("count backlog") as db:
            return int(db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])

    def compact(self, *, acked_through: int, delivered_before: datetime) -> int:
        """Delete events the hub has stored (seq <= its watermark ``acked_through``) and the broker
        acknowledged before ``delivered_before``; returns how many. A PUBACK alone never makes an event
        deletable: a broker may lose what it acknowledged. Seqs are never reused."""
        horizon = to_iso(delivered_before)
        with self._write("compact outbox") as db:
            cursor = db.execute(
                "DELETE FROM outbox WHERE seq <= ? AND delivered_at IS NOT NULL AND delivered_at < ?",
                (int(acked_through), horizon),
            )
            return cursor.rowcount

    def activity(self, since: datetime, until: datetime) -> dict[str, Any]:
        """Raw material for the metrics message: what finished and what was raised in [since, until)."""
        low, high = to_iso(since), to_iso(until)
        with self._read("read activity") as db:
            finished = [
                {
                    "decision": d,
                    "reasons": json.loads(r),
                    "stage_ms": json.loads(s),
                    "face_score": f,
                    "training": bool(t),
                }
                for d, r, s, f, t in db.execute(
                    "SELECT decision, reasons, stage_ms, face_score, training FROM transactions"
                    " WHERE finished_at >= ? AND finished_at < ? AND status != 'in_progress'",
                    (low, high),
                )
            ]
            raised = {
                str(t): int(n)
                for t, n in db.execute(
                    "SELECT type, count(*) FROM outbox WHERE ts >= ? AND ts < ? GROUP BY type", (low, high)
                )
            }
            oldest = db.execute("SELECT min(ts) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
            backlog = int(db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])
        return {
            "transactions": finished,
            "events": raised,
            "backlog": backlog,
            "oldest_pending": None if oldest is None else from_iso(oldest),
        }

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self._read(f"read meta {key}") as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ValueError("meta keys and values are non-empty / plain strings")
        with self._write(f"write meta {key}") as db:
            db.execute(
                "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, self._timestamp()),
            )

    def meta(self) -> dict[str, str]:
        with self._read("read meta") as db:
            return {
                str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
            }

    # ------------------------------------------------------------------ remote requests

    def post_request(self, command_id: str, name: str, args: Mapping[str, Any]) -> bool:
        """Queue a hub request for the kiosk; False if this command id was already queued."""
        with self._write(f"queue request {name}") as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO remote_requests (command_id, name, args, requested_at)"
                " VALUES (?, ?, ?, ?)",
                (command_id, name, dumps(dict(args)), self._timestamp()),
            )
            return cursor.rowcount == 1

    def open_requests(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Requests not yet acted on, oldest first: (command_id, name, args)."""
        with self._read("read open requests") as db:
            rows = db.execute(
                "SELECT command_id, name, args FROM remote_requests WHERE done_at IS NULL"
                " ORDER BY requested_at, command_id"
            ).fetchall()
        return [(str(c), str(n), json.loads(a)) for c, n, a in rows]

    def finish_request(self, command_id: str, outcome: str) -> None:
        with self._write("finish request") as db:
            db.execute(
                "UPDATE remote_requests SET done_at = ?, outcome = ?"
                " WHERE command_id = ? AND done_at IS NULL",
                (self._timestamp(), outcome, command_id),
            )

    # ------------------------------------------------------------------ reference data (write)

    def apply_dataset(
        self, name: Dataset | str, version: str, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]
    ) -> None:
        """Validate and atomically replace the dataset ``name`` with ``version``.

        Raises :class:`ReferenceDataError` (previous version kept) on any invalid record, or when this
        version was already applied with different content. Re-applying identical content is a no-op.
        """
        validated = validate_dataset(name, version, records)
        table = _REF_TABLES[validated.name]
        with self._write(f"apply {validated.name} dataset version {version}") as db:
            current = db.execute(
                "SELECT version, sha256 FROM ref_datasets WHERE name = ?", (validated.name.value,)
            ).fetchone()
            if current is not None and current[0] == version:
                if current[1] == validated.sha256:
                    return
                raise ReferenceDataError(
                    f"reference dataset {validated.name.value!r} version {version!r} is already applied with "
                    f"different content (sha256 {current[1]} vs {validated.sha256}); a version must identify "
                    "its content - refused, previous data kept"
                )
            # Inside one transaction: readers on other connections keep seeing the old snapshot (WAL)
            # until COMMIT, then the complete new one.
            db.execute(f"DELETE FROM {table}")
            if validated.rows:
                db[table].insert_all(validated.rows, batch_size=500)
            db.execute(
                "INSERT INTO ref_datasets (name, version, applied_at, record_count, sha256)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
                " applied_at = excluded.applied_at, record_count = excluded.record_count,"
                " sha256 = excluded.sha256",
                (validated.name.value, version, self._timestamp(), validated.record_count, validated.sha256),
            )

    def dataset_rows(
        self, name: Dataset | str, columns: Sequence[str]
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """The version in force and its rows (``columns`` of a list dataset), read in one snapshot."""
        dataset = Dataset(_text(name))
        if dataset is Dataset.POLICY:
            raise ValueError("the policy is one document, not rows")
        table = _REF_TABLES[dataset]
        with self._read(f"read {dataset.value} rows") as db:
            # One read transaction: version and rows come from the same snapshot (WAL), without
            # holding the write lock the lane needs.
            db.execute("BEGIN")
            try:
                row = db.execute(
                    "SELECT version FROM ref_datasets WHERE name = ?", (dataset.value,)
                ).fetchone()
                rows = db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            finally:
                db.execute("COMMIT")
        return (None if row is None else str(row[0])), [dict(zip(columns, r, strict=True)) for r in rows]

    # ------------------------------------------------------------------ reference data (ReferenceLookup)

    def policy_rules(self) -> PolicyRules | None:
        with self._read("read policy") as db:
            row = db.execute("SELECT rules FROM ref_policy WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            return PolicyRules.model_validate_json(row[0])
        except ValidationError as exc:
            # Only reachable if the file was edited or written by a build with other rules.
            raise StoreError(
                f"store {self._path}: stored policy rules are unreadable: {exc}", path=self._path
            ) from exc

    def evisa_records(self, document_hash: str) -> list[EVisaRecord]:
        with self._read("look up e-visa") as db:
            rows = db.execute(
                "SELECT document_hash, nationality, kind, valid_from, valid_until FROM ref_evisa"
                " WHERE document_hash = ? ORDER BY valid_from, valid_until, kind",
                (document_hash,),
            ).fetchall()
        return [
            EVisaRecord(
                document_hash=h,
                nationality=n,
                kind=k,
                valid_from=date.fromisoformat(f),
                valid_until=date.fromisoformat(u),
            )
            for h, n, k, f, u in rows
        ]

    def visa_exempt_max_stay(self, nationality: str) -> int | None:
        with self._read("look up visa exemption") as db:
            row = db.execute(
                "SELECT max_stay_days FROM ref_visa_exempt WHERE nationality = ?", (nationality,)
            ).fetchone()
        return None if row is None else int(row[0])

    def watchlist_hits(self, document_hash: str, person_hash: str) -> list[WatchlistEntry]:
        with self._read("look up watchlist") as db:
            rows = db.execute(
                "SELECT subject_hash, match_on, category FROM ref_watchlist"
                " WHERE (subject_hash = ? AND match_on = 'document')"
                " OR (subject_hash = ? AND match_on = 'person')"
                " ORDER BY match_on, category",
                (document_hash, person_hash),
            ).fetchall()
        return [WatchlistEntry(subject_hash=s, match_on=m, category=c) for s, m, c in rows]

    def dataset_versions(self) -> dict[str, str]:
        with self._read("read dataset versions") as db:
            return self._dataset_versions(db)

    @staticmethod
    def _dataset_versions(db: Database) -> dict[str, str]:
        return {str(n): str(v) for n, v in db.execute("SELECT name, version FROM ref_datasets ORDER BY name")}

    def datasets(self) -> list[DatasetInfo]:
        with self._read("read datasets") as db:
            rows = db.execute(
                "SELECT name, version, applied_at, record_count, sha256 FROM ref_datasets ORDER BY name"
            ).fetchall()
        return [DatasetInfo(n, v, from_iso(a), int(c), s) for n, v, a, c, s in rows]

    # ------------------------------------------------------------------ status

    def diagnostics(self) -> dict[str, Any]:
        """Settings and sizes for the status page and for tests that must see the real PRAGMAs."""
        with self._read("read diagnostics") as db:

            def pragma(name: str) -> Any:
                return db.execute(f"PRAGMA {name}").fetchone()[0]

            page_size = int(pragma("page_size"))
            return {
                "path": str(self._path),
                "schema_version": migrations.schema_version(db),
                "journal_mode": str(pragma("journal_mode")),
                "synchronous": int(pragma("synchronous")),
                "busy_timeout_ms": int(pragma("busy_timeout")),
                "size_bytes": int(pragma("page_count")) * page_size,
                "max_bytes": int(pragma("max_page_count")) * page_size,
                "backlog": int(
                    db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
                ),
                "transactions": int(db.execute("SELECT count(*) FROM transactions").fetchone()[0]),
            }
