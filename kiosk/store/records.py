"""Value types the store hands out, and the text encodings (JSON, ISO time) it keeps them in."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from typing import Any

import uuid6


class EventType(StrEnum):
    TRANSACTION = "transaction"
    ALERT = "alert"
    HELP = "help"
    FEEDBACK = "feedback"
    AUDIT = "audit"
    STATE = "state"


class TransactionStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    ABORTED = "aborted"


# Kept as plain strings (not a store-owned enum) so the engine's own decision enum, a StrEnum, can be
# passed straight in without the two packages having to share a type.
DECISIONS = frozenset({"OPEN", "REFER", "ABANDONED", "ABORTED", "OUT_OF_SERVICE"})

# Keys that would mean personal or biometric data is about to be written to a record that leaves the
# device. The engine should never build such payloads; this is the last line of defence, not the policy.
FORBIDDEN_PAYLOAD_KEYS = frozenset(
    {
        "surname",
        "given_name",
        "given_names",
        "full_name",
        "holder_name",
        "document_number",
        "doc_number",
        "mrz",
        "mrz_lines",
        "birth_date",
        "date_of_birth",
        "dob",
        "image",
        "images",
        "photo",
        "portrait",
        "face_image",
        "embedding",
        "embeddings",
        "template",
        "templates",
        "fingerprint_template",
    }
)
# Fleet-key hashes (kiosk.privacy): fine in the hub's bundles, which bring them to the device, but the
# same on every kiosk for years, so in an event they would let the hub link a passport's crossings.
# Events carry kiosk.pseudonyms' rotating pseudonym instead.
DEVICE_ONLY_KEYS = frozenset({"document_hash", "person_hash", "subject_hash"})


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    event_id: str
    type: EventType
    ts: datetime
    schema: int
    # The canonical JSON text exactly as stored: the edge agent publishes it byte for byte, so what
    # the hub receives is what was committed here.
    payload: str
    training: bool
    delivered_at: datetime | None = None
    # The event's entry in the audit ledger (kiosk.store.ledger); None for events from before it.
    ledger_index: int | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The payload parsed."""
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the wire (times as ISO-8601 UTC text, payload as an object)."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "type": str(self.type),
            "ts": to_iso(self.ts),
            "schema": self.schema,
            "payload": self.data,
            "training": self.training,
            "delivered_at": to_iso(self.delivered_at) if self.delivered_at else None,
        }


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    version: str
    applied_at: datetime
    record_count: int
    sha256: str


def new_id() -> str:
    # UUIDv7: time-ordered, so ids sort roughly by creation and index locality stays good.
    return str(uuid6.uuid7())


def to_iso(moment: datetime) -> str:
    """Fixed-width UTC text (``2025-01-31T23:59:59.123Z``) so string order equals time order in SQL."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the store only records timezone-aware (UTC) times")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    # numpy scalars are not int/float subclasses (float32, int64); arrays fall through and are refused.
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def dumps(value: object) -> str:
    """Canonical JSON; raises ``ValueError`` for anything that cannot be stored faithfully."""
    try:
        return json.dumps(
            value,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"value cannot be stored as JSON: {exc}") from exc


def canonical_sha256(value: object) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8): what ``ref_datasets.sha256`` holds."""
    return hashlib.sha256(dumps(value).encode("utf-8")).hexdigest()


def check_payload(payload: object, *, where: str = "payload") -> None:
    """Refuse non-mapping payloads, non-string keys and keys that name personal or biometric data."""
    if not isinstance(payload, Mapping):
        raise ValueError(f"{where} must be a mapping, not {type(payload).__name__}")
    _walk(payload, where)


def _walk(value: object, where: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string")
            if key.lower() in FORBIDDEN_PAYLOAD_KEYS:
                raise ValueError(f"{where}.{key}: personal or biometric data must never be stored")
            if key.lower() in DEVICE_ONLY_KEYS:
                raise ValueError(f"{where}.{key}: a fleet-key hash never leaves the device (use a pseudonym)")
            _walk(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a finite number")
