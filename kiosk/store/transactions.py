"""Traveller transactions: begun, provisionally decided, finished (or aborted after a crash).

Finishing writes the row and queues its ``transaction`` event in one SQLite transaction, and the
event's payload is derived from the same :class:`FinishedTransaction` (and the row's own training
flag and versions), so each fact is stated once and the hub sees exactly what the kiosk recorded.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from kiosk.reference_data import Dataset
from kiosk.store.core import StoreCore, enum_value, page_limit, query_one
from kiosk.store.dataset_validation import HASH_PATTERN, NATIONALITY_PATTERN
from kiosk.store.errors import TransactionStateError, UnknownTransactionError
from kiosk.store.outbox import Outbox
from kiosk.store.records import DECISIONS, EventType, OutboxEvent, TransactionStatus, dumps, new_id, to_iso
from kiosk.store.reference_data import dataset_versions

_VERSION_COLUMNS = {"kiosk": "kiosk_version", "config": "config_version", "model": "model_version"}
_DATASET_NAMES = frozenset(d.value for d in Dataset)
_NATIONALITY = re.compile(NATIONALITY_PATTERN)
_HASH = re.compile(HASH_PATTERN)
# Reason codes are identifiers, never free text (free text is where a name could slip in).
_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SHORT_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")


@dataclass(frozen=True)
class FinishedTransaction:
    """How a transaction ended: codes, timings and scores only, never a name, number or image."""

    id: str
    decision: str
    reasons: Sequence[str] = ()
    stage_ms: Mapping[str, float] = field(default_factory=dict)
    # The states the transaction went through, in order.
    path: Sequence[str] = ()
    document_format: str | None = None
    nationality: str | None = None
    entitlement: str | None = None
    # The document's pseudonym in this kiosk's current epoch (kiosk.pseudonyms), never the fleet-key
    # hash, which would link the traveller across kiosks and years.
    document_pseudonym: str | None = None
    face_score: float | None = None
    face_attempts: int = 0
    face_quality: Mapping[str, float] = field(default_factory=dict)
    fingerprint_score: int | None = None


def _decision(decision: object) -> str:
    value = enum_value(decision)
    if not isinstance(value, str) or value not in DECISIONS:
        raise ValueError(f"decision {decision!r} is not one of {sorted(DECISIONS)}")
    return value


def _code(name: str, value: object, pattern: re.Pattern[str] = _CODE) -> str | None:
    value = enum_value(value)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{name} {value!r} is not a valid code")
    return value


def _codes(name: str, values: object) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list of codes, got {values!r}")
    codes = [_code(name, value) for value in values]
    if None in codes:
        raise ValueError(f"{name} must not contain None, got {values!r}")
    return [code for code in codes if code is not None]


def _number(name: str, value: object) -> int | float:
    # numbers.Real, not float: numpy scores (float32) are registered there but are not floats.
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _figures(name: str, figures: object, *, non_negative: bool) -> dict[str, int | float]:
    if not isinstance(figures, Mapping):
        raise ValueError(f"{name} must be a mapping of names to numbers, got {figures!r}")
    checked: dict[str, int | float] = {}
    for key, value in figures.items():
        key_code = _code(f"{name} key", key)
        if key_code is None:
            raise ValueError(f"{name} keys must be names, not None")
        number = _number(f"{name}[{key!r}]", value)
        if non_negative and number < 0:
            raise ValueError(f"{name}[{key!r}] must not be negative, got {value!r}")
        checked[key_code] = number
    return checked


def _checked(record: FinishedTransaction) -> FinishedTransaction:
    """``record`` with every field validated and normalised to what is stored (plain lists, floats)."""
    face_attempts = record.face_attempts
    if isinstance(face_attempts, bool) or not isinstance(face_attempts, int) or face_attempts < 0:
        raise ValueError(f"face_attempts must be a count, got {face_attempts!r}")
    fingerprint = record.fingerprint_score
    if fingerprint is not None and (isinstance(fingerprint, bool) or not isinstance(fingerprint, int)):
        raise ValueError(f"fingerprint_score must be an integer, got {fingerprint!r}")
    quality = _figures("face_quality", record.face_quality, non_negative=False)
    return replace(
        record,
        decision=_decision(record.decision),
        reasons=_codes("reasons", record.reasons),
        stage_ms=_figures("stage_ms", record.stage_ms, non_negative=True),
        path=_codes("path", record.path),
        document_format=_code("document_format", record.document_format, _SHORT_CODE),
        nationality=_code("nationality", record.nationality, _NATIONALITY),
        entitlement=_code("entitlement", record.entitlement, _SHORT_CODE),
        document_pseudonym=_code("document_pseudonym", record.document_pseudonym, _HASH),
        face_score=None if record.face_score is None else float(_number("face_score", record.face_score)),
        face_quality={key: float(value) for key, value in quality.items()},
    )


def _event_payload(checked: FinishedTransaction, row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``transaction`` event (edge_agent/schemas/event-transaction.schema.json) of a finished row."""
    return {
        "transaction_id": checked.id,
        "decision": checked.decision,
        "reasons": list(checked.reasons),
        "stage_ms": checked.stage_ms,
        "path": list(checked.path),
        "document_format": checked.document_format,
        "nationality": checked.nationality,
        "entitlement": checked.entitlement,
        "document_pseudonym": checked.document_pseudonym,
        "face": {
            "score": checked.face_score,
            "attempts": checked.face_attempts,
            "quality": checked.face_quality,
        },
        "fingerprint": {"score": checked.fingerprint_score},
        "versions": {key: row[column] for key, column in _VERSION_COLUMNS.items() if row[column] is not None},
        "training": bool(row["training"]),
    }


def _from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    record = dict(row)
    for column in ("reasons", "stage_ms", "reference_versions", "provisional_reasons"):
        if record[column] is not None:
            record[column] = json.loads(record[column])
    record["training"] = bool(record["training"])
    return record


class Transactions:
    def __init__(self, core: StoreCore, outbox: Outbox) -> None:
        self._core = core
        self._outbox = outbox

    def begin(self, *, versions: Mapping[str, str], training: bool) -> str:
        """Record the start of a traveller transaction (committed at once); return its UUIDv7 id.

        ``versions`` keys: ``kiosk``, ``config``, ``model`` (to their columns) and optionally dataset
        names, which override the store's own record of the reference dataset versions in force.
        """
        if not isinstance(training, bool):
            raise ValueError(f"training must be a bool, got {training!r}")
        columns: dict[str, str] = {}
        dataset_overrides: dict[str, str] = {}
        for key, value in versions.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"version {key!r} must be a non-empty string, got {value!r}")
            if key in _VERSION_COLUMNS:
                columns[_VERSION_COLUMNS[key]] = value
            elif key in _DATASET_NAMES:
                dataset_overrides[key] = value
            else:
                known = ", ".join([*_VERSION_COLUMNS, *sorted(_DATASET_NAMES)])
                raise ValueError(f"unknown version key {key!r} (known: {known})")
        txn_id = new_id()
        with self._core.write("begin transaction") as db:
            in_force = {**dataset_versions(db), **dataset_overrides}
            db.execute(
                "INSERT INTO transactions (id, started_at, status, reference_versions, training,"
                " kiosk_version, config_version, model_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    txn_id,
                    self._core.timestamp(),
                    TransactionStatus.IN_PROGRESS.value,
                    dumps(in_force),
                    int(training),
                    columns.get("kiosk_version"),
                    columns.get("config_version"),
                    columns.get("model_version"),
                ),
            )
        return txn_id

    def finish(self, record: FinishedTransaction) -> OutboxEvent:
        """Close the transaction and queue its ``transaction`` event, atomically (both or neither).

        Decision ``ABORTED`` gives status ``aborted``, any other ``finished``. The event carries the
        record plus the row's versions and training flag.
        """
        checked = _checked(record)
        status = TransactionStatus.ABORTED if checked.decision == "ABORTED" else TransactionStatus.FINISHED
        with self._core.write(f"finish transaction {record.id}") as db:
            row = self._in_progress(db, record.id)
            db.execute(
                "UPDATE transactions SET finished_at = ?, status = ?, decision = ?, reasons = ?,"
                " stage_ms = ?, document_format = ?, nationality = ?, entitlement = ?, face_score = ?"
                " WHERE id = ?",
                (
                    self._core.timestamp(),
                    status.value,
                    checked.decision,
                    dumps(checked.reasons),
                    dumps(checked.stage_ms),
                    checked.document_format,
                    checked.nationality,
                    checked.entitlement,
                    checked.face_score,
                    record.id,
                ),
            )
            # Same SQLite transaction as the UPDATE: a failure here (full disk) undoes both.
            return self._outbox.insert(
                db,
                EventType.TRANSACTION,
                _event_payload(checked, row),
                training=bool(row["training"]),
                schema=1,
            )

    def record_decision(self, txn_id: str, *, decision: str, reasons: Sequence[str]) -> None:
        """Durably note the decision before the lane acts on it (e.g. before the entry door opens).

        The transaction stays ``in_progress`` with ``decision`` NULL; this goes to
        ``provisional_decision``/``provisional_reasons``, and may be overwritten until the finish. If
        this write fails (full disk), the caller must not act on the decision.
        """
        decision_value = _decision(decision)
        reason_codes = _codes("reasons", reasons)
        with self._core.write(f"record decision of transaction {txn_id}") as db:
            self._in_progress(db, txn_id)
            db.execute(
                "UPDATE transactions SET provisional_decision = ?, provisional_reasons = ?, decided_at = ?"
                " WHERE id = ?",
                (decision_value, dumps(reason_codes), self._core.timestamp(), txn_id),
            )

    def _in_progress(self, db: Database, txn_id: str) -> dict[str, Any]:
        row = query_one(db, "SELECT * FROM transactions WHERE id = ?", (txn_id,))
        if row is None:
            raise UnknownTransactionError(
                f"store {self._core.path}: no transaction {txn_id!r}", path=self._core.path
            )
        if row["status"] != TransactionStatus.IN_PROGRESS:
            raise TransactionStateError(
                f"store {self._core.path}: transaction {txn_id} is already {row['status']}",
                path=self._core.path,
            )
        return row

    def abort_unfinished(self) -> list[str]:
        """Mark every ``in_progress`` transaction aborted (reason INTERRUPTED) and queue an alert each.

        For start-up after a crash, before the engine begins new transactions: it does not know which
        in-progress rows belong to a live caller.
        """
        with self._core.write("abort unfinished transactions") as db:
            rows = list(
                db.query(
                    "SELECT id, training, provisional_decision FROM transactions"
                    " WHERE status = 'in_progress'"
                    " ORDER BY started_at, id"
                )
            )
            finished_at = self._core.timestamp()
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
                self._outbox.insert(db, EventType.ALERT, alert, training=bool(row["training"]), schema=1)
        return [row["id"] for row in rows]

    def get(self, txn_id: str) -> dict[str, Any]:
        with self._core.read(f"read transaction {txn_id}") as db:
            row = query_one(db, "SELECT * FROM transactions WHERE id = ?", (txn_id,))
        if row is None:
            raise UnknownTransactionError(
                f"store {self._core.path}: no transaction {txn_id!r}", path=self._core.path
            )
        return _from_row(row)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent transactions, newest first."""
        with self._core.read("list transactions") as db:
            rows = list(
                db.query(
                    "SELECT * FROM transactions ORDER BY started_at DESC, id DESC LIMIT ?",
                    (page_limit(limit),),
                )
            )
        return [_from_row(row) for row in rows]

    def count(self) -> int:
        with self._core.read("count transactions") as db:
            return int(db.execute("SELECT count(*) FROM transactions").fetchone()[0])

    def finished_between(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """For the metrics message: the outcome figures of transactions finished in [since, until)."""
        with self._core.read("read finished transactions") as db:
            return [
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
                    (to_iso(since), to_iso(until)),
                )
            ]
