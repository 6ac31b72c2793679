"""The one SQLite connection of a :class:`~kiosk.store.Store`, its lock, and the small key/value meta table.

Durability: WAL journal with ``synchronous=FULL``, so every committed transaction is on the medium
before ``commit`` returns - a kill -9 or power cut loses nothing the engine was told is stored.
Concurrency: one connection per store, serialised by a lock (the engine calls from worker threads);
other processes (the edge agent) use their own connections, and ``busy_timeout`` makes writers queue
instead of failing. Write transactions start with ``BEGIN IMMEDIATE`` so a read-then-write
transaction never hits SQLITE_BUSY on lock upgrade, where no busy handler helps.

The store's parts (transactions, outbox, reference data, requests) all go through :meth:`StoreCore.read`
and :meth:`StoreCore.write`; nothing outside ``kiosk.store`` touches SQL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from kiosk.at_rest import create_private_file
from kiosk.store import migrations
from kiosk.store.errors import StoreError, store_error
from kiosk.store.records import to_iso

DEFAULT_BUSY_TIMEOUT_S = 5.0
# Upper bound on rows per read call: pages stay bounded in memory on a Pi.
MAX_PAGE_ROWS = 10_000
# Bound the -wal file after checkpoints; an SD card should not keep a large WAL around.
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


def enum_value(value: object) -> object:
    # str() of a (str, Enum) mixin gives "Cls.MEMBER"; the value is what must be stored.
    return value.value if isinstance(value, Enum) else value


def page_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_ROWS:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE_ROWS}, got {limit!r}")
    return limit


def query_one(db: Database, sql: str, params: Sequence[object]) -> dict[str, Any] | None:
    # Fully consumed, so no half-read statement keeps a WAL read snapshot open.
    rows = list(db.query(sql, params))
    return rows[0] if rows else None


class StoreCore:
    """Owns the connection and the lock; hands out read and write transactions to the store's parts."""

    def __init__(self, db: Database, path: Path, *, now: Callable[[], datetime] = utc_now) -> None:
        self._db: Database | None = db
        self.path = path
        self._now = now
        # Re-entrant so a part may call another part's method from inside its own write.
        self._lock = threading.RLock()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        now: Callable[[], datetime] | None = None,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        max_bytes: int | None = None,
        check_integrity: bool = True,
    ) -> StoreCore:
        """See :meth:`kiosk.store.Store.open`."""
        path = Path(path)
        _check_location(path)
        try:
            # Created 0600 before SQLite sees it: SQLite gives the -wal and -shm files the database's mode.
            create_private_file(path)
        except OSError as exc:
            raise StoreError(f"store {path}: cannot create the database file: {exc}", path=path) from exc
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout_s, check_same_thread=False)
        except sqlite3.Error as exc:
            raise store_error(path, "open", exc) from exc
        try:
            db = Database(conn, execute_plugins=False)
            _configure(db, path, busy_timeout_s, max_bytes)
            if check_integrity:
                _quick_check(db, path)
            migrations.migrate(db, path)
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(path, "open", exc) from exc
        except BaseException:
            conn.close()
            raise
        return cls(db, path, now=now or utc_now)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                try:
                    db.close()
                except sqlite3.Error as exc:
                    raise store_error(self.path, "close", exc) from exc

    def error(self, message: str) -> StoreError:
        return StoreError(f"store {self.path}: {message}", path=self.path)

    def timestamp(self) -> str:
        return to_iso(self._now())

    def _live_db(self) -> Database:
        if self._db is None:
            raise self.error("already closed")
        return self._db

    @contextmanager
    def read(self, action: str) -> Iterator[Database]:
        with self._lock:
            db = self._live_db()
            try:
                yield db
            except sqlite3.Error as exc:
                raise store_error(self.path, action, exc) from exc

    @contextmanager
    def write(self, action: str) -> Iterator[Database]:
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
                    _rollback(conn, exc)
                    raise
            except sqlite3.Error as exc:
                raise store_error(self.path, action, exc) from exc

    def pragmas(self) -> dict[str, Any]:
        """Settings and sizes that tests and the status page must see as SQLite reports them."""
        with self.read("read diagnostics") as db:

            def pragma(name: str) -> Any:
                return db.execute(f"PRAGMA {name}").fetchone()[0]

            page_size = int(pragma("page_size"))
            return {
                "path": str(self.path),
                "schema_version": migrations.schema_version(db),
                "journal_mode": str(pragma("journal_mode")),
                "synchronous": int(pragma("synchronous")),
                "busy_timeout_ms": int(pragma("busy_timeout")),
                "size_bytes": int(pragma("page_count")) * page_size,
                "max_bytes": int(pragma("max_page_count")) * page_size,
                "secure_delete": int(pragma("secure_delete")),
            }

    def backup(self, destination: Path) -> None:
        """A consistent copy of the whole database at ``destination`` (SQLite online backup)."""
        create_private_file(destination)
        with self.read("back up") as db, contextlib.closing(sqlite3.connect(str(destination))) as target:
            db.conn.backup(target)


class Meta:
    """Small named values shared with the edge agent (lane mode, kiosk status, metrics window)."""

    def __init__(self, core: StoreCore) -> None:
        self._core = core

    def get(self, key: str) -> str | None:
        with self._core.read(f"read meta {key}") as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ValueError("meta keys and values are non-empty / plain strings")
        with self._core.write(f"write meta {key}") as db:
            db.execute(
                "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, self._core.timestamp()),
            )

    def all(self) -> dict[str, str]:
        with self._core.read("read meta") as db:
            return {
                str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
            }


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


def _configure(db: Database, path: Path, busy_timeout_s: float, max_bytes: int | None) -> None:
    db.execute(f"PRAGMA busy_timeout = {max(0, int(busy_timeout_s * 1000))}")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"store {path}: cannot enable WAL journal mode (got {mode!r})", path=path)
    # Per connection, not persistent: every connection (this one, the edge agent's) must set it.
    db.execute("PRAGMA synchronous = FULL")
    # Deleted rows (purged transactions, compacted events) are overwritten with zeros, not left in free
    # pages for anyone with the file to read back. Per connection too; set whatever the build default.
    db.execute("PRAGMA secure_delete = ON")
    db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
    if max_bytes is not None:
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        pages = max(1, int(max_bytes) // page_size)
        db.execute(f"PRAGMA max_page_count = {pages}")


def _quick_check(db: Database, path: Path) -> None:
    results = [row[0] for row in db.execute("PRAGMA quick_check(5)").fetchall()]
    if results != ["ok"]:
        raise StoreError(f"store {path}: database file is corrupt: {'; '.join(results)}", path=path)


def _rollback(conn: sqlite3.Connection, original: BaseException) -> None:
    # SQLite may already have rolled back (e.g. on SQLITE_FULL); a failing rollback must not hide
    # the error that caused it.
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as rollback_exc:
        original.add_note(f"rollback also failed: {rollback_exc}")
