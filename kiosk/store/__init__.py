"""Local durable store of the kiosk: transactions, outbox, reference data, hub requests, meta (SQLite)."""

from kiosk.store.core import MAX_PAGE_ROWS
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
from kiosk.store.requests import Request
from kiosk.store.store import Store
from kiosk.store.transactions import FinishedTransaction

__all__ = [
    "DECISIONS",
    "LATEST_VERSION",
    "MAX_PAGE_ROWS",
    "DatasetInfo",
    "EventType",
    "FinishedTransaction",
    "OutboxEvent",
    "ReferenceDataError",
    "Request",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "TransactionStateError",
    "TransactionStatus",
    "UnknownTransactionError",
    "canonical_sha256",
]
