"""The store's schema, as an ordered list of migrations. The ONLY place the schema changes.

``PRAGMA user_version`` holds the number of migrations applied; ``PRAGMA application_id`` marks the
file as a Gerbang store so a foreign SQLite file is never "migrated" into one. Each migration runs
in its own ``BEGIN IMMEDIATE`` transaction together with the version bump (SQLite DDL and the header
pragmas are transactional), so a crash mid-upgrade leaves the previous, consistent version. The
version is re-read inside that transaction because the edge agent may open the file at the same time.

To change the schema: append a migration, never edit or reorder a released one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from kiosk.store.errors import SchemaVersionError

# "GRBG" in ASCII.
APPLICATION_ID = 0x47524247


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Database], None]


def _run(statements: Sequence[str]) -> Callable[[Database], None]:
    def apply(db: Database) -> None:
        for statement in statements:
            db.execute(statement)

    return apply


# Deliberately no CHECK on decision and event type: those vocabularies will grow, and widening a CHECK
# means rebuilding the table (and, for the outbox, carrying sqlite_sequence across). They are
# validated in Python instead. Status and booleans are fundamental and are checked here.
_V1 = (
    """
    CREATE TABLE transactions (
        id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('in_progress', 'finished', 'aborted')),
        decision TEXT,
        reasons TEXT NOT NULL DEFAULT '[]',
        stage_ms TEXT NOT NULL DEFAULT '{}',
        document_format TEXT,
        nationality TEXT,
        entitlement TEXT,
        face_score REAL,
        kiosk_version TEXT,
        config_version TEXT,
        model_version TEXT,
        reference_versions TEXT NOT NULL DEFAULT '{}',
        training INTEGER NOT NULL DEFAULT 0 CHECK (training IN (0, 1)),
        -- What the engine decided before acting on it (record_decision): kept apart from `decision`,
        -- which stays NULL until the transaction ends, so a crash after "OPEN" was decided but before
        -- the finish still shows in the audit what the lane was doing.
        provisional_decision TEXT,
        provisional_reasons TEXT,
        decided_at TEXT,
        CHECK ((status = 'in_progress') = (decision IS NULL))
    )
    """,
    "CREATE INDEX transactions_started_at ON transactions (started_at)",
    # Partial: start-up recovery looks for the (few) unfinished rows among very many finished ones.
    "CREATE INDEX transactions_in_progress ON transactions (status) WHERE status = 'in_progress'",
    # AUTOINCREMENT (not a bare rowid) so a seq is never reused after compaction deletes the newest rows:
    # the hub de-duplicates and orders by seq.
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        ts TEXT NOT NULL,
        "schema" INTEGER NOT NULL DEFAULT 1,
        payload TEXT NOT NULL,
        training INTEGER NOT NULL DEFAULT 0 CHECK (training IN (0, 1)),
        delivered_at TEXT
    )
    """,
    "CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL",
    "CREATE INDEX outbox_delivered_at ON outbox (delivered_at) WHERE delivered_at IS NOT NULL",
    """
    CREATE TABLE ref_datasets (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        applied_at TEXT NOT NULL,
        record_count INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE ref_evisa (
        document_hash TEXT NOT NULL,
        nationality TEXT NOT NULL,
        kind TEXT NOT NULL,
        valid_from TEXT NOT NULL,
        valid_until TEXT NOT NULL,
        dataset_version TEXT NOT NULL
    )
    """,
    "CREATE INDEX ref_evisa_document_hash ON ref_evisa (document_hash)",
    """
    CREATE TABLE ref_visa_exempt (
        nationality TEXT PRIMARY KEY,
        max_stay_days INTEGER NOT NULL,
        dataset_version TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE ref_watchlist (
        subject_hash TEXT NOT NULL,
        match_on TEXT NOT NULL CHECK (match_on IN ('document', 'person')),
        category TEXT NOT NULL,
        dataset_version TEXT NOT NULL
    )
    """,
    "CREATE INDEX ref_watchlist_subject ON ref_watchlist (subject_hash, match_on)",
    """
    CREATE TABLE ref_policy (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        schema_version INTEGER NOT NULL,
        rules TEXT NOT NULL,
        dataset_version TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
)

# Requests the edge agent leaves for the kiosk process (signed hub commands that act on the lane).
# A table rather than a meta key: agent and kiosk write concurrently and each row is its own record.
_V2 = (
    """
    CREATE TABLE remote_requests (
        command_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        args TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        done_at TEXT,
        outcome TEXT
    )
    """,
    "CREATE INDEX remote_requests_open ON remote_requests (requested_at) WHERE done_at IS NULL",
)

# The passive-authentication trust store synced from the hub (kiosk.chip.trust_dataset): the records
# as the hub sent them, so a re-sent version compares equal.
_V3 = (
    """
    CREATE TABLE ref_chip_trust (
        sha256 TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('csca', 'master_list', 'crl')),
        der TEXT NOT NULL,
        subject TEXT NOT NULL,
        country TEXT,
        not_after TEXT,
        dataset_version TEXT NOT NULL
    )
    """,
)

# Each watchlist record's own id from the hub (non-personal), so a hit alert can name the record that
# matched without the document's keyed hash, which stays on the device. Rows applied before this
# have none (NULL) until the hub's next watchlist version.
_V4 = ("ALTER TABLE ref_watchlist ADD COLUMN record_id TEXT",)

# Personal details kept for an officer's referral, only ever as AES-GCM ciphertext (kiosk.referrals).
_V5 = (
    """
    CREATE TABLE referrals (
        id TEXT PRIMARY KEY,
        transaction_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sealed BLOB NOT NULL
    )
    """,
    "CREATE INDEX referrals_transaction ON referrals (transaction_id)",
)

# The tamper-evident audit ledger (kiosk.store.ledger): an RFC 9162 Merkle tree over one entry per
# outbox event. `idx` from 0 (AUTOINCREMENT only so sqlite_sequence remembers the highest index ever
# written, a second witness of deleted tail entries). Interior nodes are the perfect subtrees
# completed by each append, keyed by `pos` = (last leaf index << 6) | level, so the rowid order is
# the order a verifier recomputes them in, and any node is one rowid lookup.
_V6 = (
    """
    CREATE TABLE ledger (
        idx INTEGER PRIMARY KEY AUTOINCREMENT,
        entry BLOB NOT NULL,
        leaf BLOB NOT NULL,
        transaction_id TEXT
    )
    """,
    "CREATE INDEX ledger_transaction ON ledger (transaction_id) WHERE transaction_id IS NOT NULL",
    "CREATE TABLE ledger_nodes (pos INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
    """
    CREATE TABLE ledger_heads (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        size INTEGER NOT NULL,
        root BLOB NOT NULL,
        ts TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature BLOB NOT NULL
    )
    """,
    "CREATE TABLE ledger_keys (key_id TEXT PRIMARY KEY, public_key BLOB NOT NULL)",
    "ALTER TABLE outbox ADD COLUMN ledger_index INTEGER",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "transactions, outbox, reference data, meta", _run(_V1)),
    Migration(2, "remote requests from the hub", _run(_V2)),
    Migration(3, "chip trust store dataset", _run(_V3)),
    Migration(4, "watchlist record ids", _run(_V4)),
    Migration(5, "sealed referral details", _run(_V5)),
    Migration(6, "audit ledger (Merkle tree of the outbox events, signed heads)", _run(_V6)),
)

LATEST_VERSION = len(MIGRATIONS)


def _check_sequence(migrations: Sequence[Migration]) -> None:
    for index, migration in enumerate(migrations, start=1):
        if migration.version != index:
            raise RuntimeError(
                f"migration #{index} is numbered {migration.version}: the list must be 1, 2, 3 ..."
            )


_check_sequence(MIGRATIONS)


def schema_version(db: Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _application_id(db: Database) -> int:
    return int(db.execute("PRAGMA application_id").fetchone()[0])


def _check_compatible(db: Database, path: Path, version: int, latest: int) -> None:
    if version > latest:
        raise SchemaVersionError(
            f"store {path}: database schema version {version} is newer than this build understands "
            f"(at most {latest}); it was written by newer kiosk software - upgrade the software, "
            "or restore a database made by this version",
            path=path,
        )
    app_id = _application_id(db)
    if app_id not in (0, APPLICATION_ID) or (version > 0 and app_id != APPLICATION_ID):
        raise SchemaVersionError(
            f"store {path}: not a Gerbang store (application_id {app_id:#x}, user_version {version})",
            path=path,
        )
    if version == 0:
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]
        if tables:
            raise SchemaVersionError(
                f"store {path}: not a Gerbang store (holds {tables} schema objects but no schema version)",
                path=path,
            )


def migrate(db: Database, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring ``db`` up to the newest schema; return that version. Refuses newer or foreign files.

    ``sqlite3`` errors propagate untranslated: the caller owns the path-aware error translation.
    """
    _check_sequence(migrations)
    latest = len(migrations)
    version = schema_version(db)
    _check_compatible(db, path, version, latest)
    while version < latest:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(db)
            _check_compatible(db, path, version, latest)
            if version < latest:
                migration = migrations[version]
                migration.apply(db)
                # PRAGMA arguments cannot be bound parameters; both values are ints we control.
                db.execute(f"PRAGMA user_version = {int(migration.version)}")
                if version == 0:
                    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                version = migration.version
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
    return version
