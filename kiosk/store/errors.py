"""Exceptions of the local store, and the translation of raw SQLite errors into them.

Callers (the engine, the edge agent, the composition root) only ever see these types: a failing SD
card, a full disk or a corrupt file must surface as one clear :class:`StoreError` naming the file
and the fault, so the lane can go out of service with a message an operator can act on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class StoreError(RuntimeError):
    """The store cannot do its job: missing/read-only directory, full disk, corrupt file, I/O error."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class SchemaVersionError(StoreError):
    """The database was written by a newer build (or is not a Gerbang store at all)."""


class UnknownTransactionError(StoreError, LookupError):
    """No transaction with that id exists."""


class TransactionStateError(StoreError):
    """The transaction is not in a state that allows the requested change (e.g. finished twice)."""


class ReferenceDataError(ValueError):
    """A reference dataset was refused; the previously applied version stays in force.

    Deliberately not a :class:`StoreError`: a bad dataset from the hub is a data problem to report
    upstream, not a reason to take the lane out of service.
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


# Keyed by SQLite's primary result-code name; extended codes (SQLITE_IOERR_WRITE, ...) match by prefix.
_EXPLANATIONS: dict[str, str] = {
    "SQLITE_FULL": "the disk is full or the store's size limit is reached",
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_NOTADB": "the file is not an SQLite database (corrupt, truncated or a foreign file)",
    "SQLITE_READONLY": "the database or its directory is read-only",
    "SQLITE_CANTOPEN": "the database file cannot be opened (missing or unwritable directory?)",
    "SQLITE_PERM": "permission denied",
    "SQLITE_BUSY": "another process held the database lock for longer than the busy timeout",
    "SQLITE_LOCKED": "the database is locked",
    "SQLITE_IOERR": "an I/O error occurred (failing storage medium?)",
    "SQLITE_NOMEM": "SQLite ran out of memory",
    "SQLITE_CONSTRAINT": "a constraint was violated",
}


def describe_sqlite_error(exc: sqlite3.Error) -> str:
    """A human explanation of ``exc`` followed by SQLite's own code and text."""
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    explanation = next(
        (text for code, text in _EXPLANATIONS.items() if name == code or name.startswith(code + "_")),
        None,
    )
    # Python's sqlite3 loses the code on some paths (e.g. a closed connection); fall back to the text.
    if explanation is None and "database or disk is full" in str(exc):
        explanation = _EXPLANATIONS["SQLITE_FULL"]
    detail = f"{name}: {exc}"
    return f"{explanation} ({detail})" if explanation else detail


def store_error(path: Path, action: str, exc: sqlite3.Error) -> StoreError:
    return StoreError(f"store {path}: {action} failed: {describe_sqlite_error(exc)}", path=path)
