"""The kiosk's local SQLite store: one connection shared by its parts.

``store.transactions`` (traveller records), ``store.outbox`` (events for the hub),
``store.reference_data`` (synced datasets and their lookups), ``store.requests`` (the hub-request
mailbox), ``store.ledger`` (the audit ledger over every event) and ``store.meta`` (small named
values) all go through one :class:`StoreCore`, so they share one connection and one lock, and a part
can write together with another in one SQLite transaction (a finished transaction, its event and
its ledger entry).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kiosk.store.core import DEFAULT_BUSY_TIMEOUT_S, Meta, StoreCore
from kiosk.store.ledger import Ledger
from kiosk.store.outbox import Outbox
from kiosk.store.reference_data import ReferenceData
from kiosk.store.referrals import SealedReferrals
from kiosk.store.requests import HubRequests
from kiosk.store.retention import Retention
from kiosk.store.transactions import Transactions


class Store:
    """The local store. Open with :meth:`Store.open`; ``store.reference_data`` is the policy's lookup."""

    def __init__(self, core: StoreCore) -> None:
        self._core = core
        self.meta = Meta(core)
        self.outbox = Outbox(core)
        self.transactions = Transactions(core, self.outbox)
        self.reference_data = ReferenceData(core)
        self.requests = HubRequests(core)
        self.referrals = SealedReferrals(core)
        self.retention = Retention(core, self.outbox)
        self.ledger = Ledger(core)

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
        core = StoreCore.open(
            path, now=now, busy_timeout_s=busy_timeout_s, max_bytes=max_bytes, check_integrity=check_integrity
        )
        return cls(core)

    @property
    def path(self) -> Path:
        return self._core.path

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def backup(self, destination: Path) -> None:
        """A consistent copy of the whole database at ``destination``, taken while the store is in use."""
        self._core.backup(destination)

    def diagnostics(self) -> dict[str, Any]:
        """Settings and sizes for the status page and for tests that must see the real PRAGMAs."""
        return {
            **self._core.pragmas(),
            "backlog": self.outbox.backlog(),
            "transactions": self.transactions.count(),
        }
