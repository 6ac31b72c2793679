"""What one audit-ledger entry says about one outbox event: a digest and non-personal summary fields.

An entry is the canonical JSON (``records.dumps``) of::

    {"index": 17, "kind": "transaction", "seq": 42, "event_id": "<uuid7>", "ts": "...Z",
     "payload_sha256": "<hex>", "transaction_id": "<uuid7>", "decision": "REFER",
     "reasons": ["WATCHLIST_HIT"]}

The payload itself stays in the outbox (and is compacted once the hub holds it); its SHA-256 binds
it. The summary makes the ledger readable on its own and lets the verifier compare what the
``transactions`` table says now with what was recorded then. Only fields copied by name below ever
enter an entry, so a document hash or pseudonym in a payload never does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from kiosk.store.records import EventType

# A transaction the store aborted at start-up after a crash (Transactions.abort_unfinished): its row
# says ABORTED / INTERRUPTED and only this alert reports it, so the entry carries the same decision.
INTERRUPTED_ALERT = "transaction_interrupted"
INTERRUPTED = ("ABORTED", ["INTERRUPTED"])


def payload_digest(payload_json: str) -> str:
    return hashlib.sha256(payload_json.encode("utf-8")).hexdigest()


def summary(event_type: EventType, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The non-personal fields of ``payload`` an entry repeats, by event type."""
    fields: dict[str, Any] = {}
    if isinstance(payload.get("transaction_id"), str):
        fields["transaction_id"] = payload["transaction_id"]
    if event_type is EventType.TRANSACTION:
        fields["decision"] = payload.get("decision")
        fields["reasons"] = list(payload.get("reasons") or [])
    elif event_type is EventType.ALERT:
        fields["alert"] = payload.get("alert")
        if payload.get("alert") == INTERRUPTED_ALERT:
            fields["decision"], fields["reasons"] = INTERRUPTED[0], list(INTERRUPTED[1])
    elif event_type is EventType.AUDIT:
        fields["audit"] = payload.get("audit")
    return fields


def make_entry(
    index: int,
    event_type: EventType,
    seq: int,
    event_id: str,
    ts: str,
    payload: Mapping[str, Any],
    payload_json: str,
) -> dict[str, Any]:
    return {
        "index": index,
        "kind": event_type.value,
        "seq": seq,
        "event_id": event_id,
        "ts": ts,
        "payload_sha256": payload_digest(payload_json),
        **summary(event_type, payload),
    }
