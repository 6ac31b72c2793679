"""Local durable store of the kiosk: transactions, outbox, reference data, meta (SQLite, WAL)."""

from kiosk.store.errors import (
    ReferenceDataError,
    SchemaVersionError,
    StoreError,
    TransactionStateError,
    UnknownTransactionError,
)
from kiosk.store.migrations import LATEST_VERSION
from kiosk.store.records import (
    DECISIONS,
    DatasetInfo,
    EventType,
    OutboxEvent,
    TransactionStatus,
    canonical_sha256,
)
from kiosk.store.store import Store

__all__ = [
    "DECISIONS",
    "LATEST_VERSION",
    "DatasetInfo",
    "EventType",
    "OutboxEvent",
    "ReferenceDataError",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "TransactionStateError",
    "TransactionStatus",
    "UnknownTransactionError",
    "canonical_sha256",
]
