"""The local store: schema migrations, durability settings, transactions, outbox, failure modes.

Every test runs against a real SQLite file; crash and permission scenarios use real subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from kiosk.store import (
    LATEST_VERSION,
    EventType,
    FinishedTransaction,
    OutboxEvent,
    SchemaVersionError,
    Store,
    StoreError,
    TransactionStateError,
    UnknownTransactionError,
)
from kiosk.store import migrations as store_migrations

REPO_ROOT = Path(__file__).resolve().parents[1]
VERSIONS = {"kiosk": "0.1.0", "config": "cfg-7", "model": "face-2"}
NOBODY = 65534


class FakeClock:
    """Wall clock the test moves by hand, so outbox horizons are exact."""

    def __init__(self) -> None:
        self.current = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "gerbang.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(store_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store.open(store_path, now=clock.now) as opened:
        yield opened


def raw(path: Path) -> sqlite3.Connection:
    """A second, independent connection, as another process (the edge agent) would have."""
    return sqlite3.connect(path, isolation_level=None, timeout=10)


def pragma(path: Path, name: str) -> object:
    conn = raw(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def finish(store: Store, txn_id: str, **overrides: Any) -> OutboxEvent:
    arguments: dict[str, Any] = {
        "decision": "OPEN",
        "reasons": (),
        "stage_ms": {"document_read": 812, "face_match": 440.5},
        "path": ("document_read", "face_match", "done"),
        "document_format": "TD3",
        "nationality": "MYS",
        "entitlement": "visa_exempt",
        "document_pseudonym": "ab" * 32,
        "face_score": 0.83,
        "face_attempts": 2,
        "face_quality": {"sharpness": 0.7},
        "fingerprint_score": None,
    }
    arguments.update(overrides)
    return store.transactions.finish(FinishedTransaction(id=txn_id, **arguments))


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}


# ---------------------------------------------------------------------------------------- migrations


def test_open_creates_schema_from_empty_file(store: Store, store_path: Path) -> None:
    conn = raw(store_path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    conn.close()
    assert {
        "transactions",
        "outbox",
        "ref_datasets",
        "ref_evisa",
        "ref_visa_exempt",
        "ref_watchlist",
        "ref_policy",
        "meta",
    } <= tables
    assert user_version == LATEST_VERSION == len(store_migrations.MIGRATIONS)
    assert application_id == store_migrations.APPLICATION_ID
    assert store.diagnostics()["schema_version"] == LATEST_VERSION


def test_reopen_is_idempotent_and_keeps_data(store_path: Path) -> None:
    with Store.open(store_path) as first:
        txn_id = first.transactions.begin(versions=VERSIONS, training=False)
        event = first.outbox.add(EventType.STATE, {"mode": "in_service"})
        first.meta.set("mode", "in_service")
    schema_before = sorted(raw(store_path).execute("SELECT type, name, sql FROM sqlite_master").fetchall())

    for _ in range(2):
        with Store.open(store_path) as again:
            assert again.transactions.get(txn_id)["status"] == "in_progress"
            assert [e.event_id for e in again.outbox.pending(10)] == [event.event_id]
            assert again.meta.get("mode") == "in_service"
    schema_after = sorted(raw(store_path).execute("SELECT type, name, sql FROM sqlite_master").fetchall())
    assert schema_after == schema_before
    assert pragma(store_path, "user_version") == LATEST_VERSION


def test_newer_schema_version_is_refused_and_file_left_alone(store_path: Path) -> None:
    Store.open(store_path).close()
    conn = raw(store_path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()

    with pytest.raises(SchemaVersionError) as info:
        Store.open(store_path)
    message = str(info.value)
    assert str(store_path) in message
    assert f"version {LATEST_VERSION + 1}" in message
    assert f"at most {LATEST_VERSION}" in message
    assert pragma(store_path, "user_version") == LATEST_VERSION + 1


def test_foreign_sqlite_file_is_not_migrated(store_path: Path) -> None:
    conn = raw(store_path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, data BLOB)")
    conn.close()

    with pytest.raises(SchemaVersionError, match="not a Gerbang store"):
        Store.open(store_path)
    conn = raw(store_path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["photos"]
    conn.close()


def test_failed_migration_rolls_back_to_previous_version(store_path: Path) -> None:
    Store.open(store_path).close()

    def half_done(db: Database) -> None:
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration step failed")

    broken = (
        *store_migrations.MIGRATIONS,
        store_migrations.Migration(LATEST_VERSION + 1, "broken", half_done),
    )
    db = Database(sqlite3.connect(store_path), execute_plugins=False)
    with pytest.raises(RuntimeError, match="migration step failed"):
        store_migrations.migrate(db, store_path, broken)
    assert store_migrations.schema_version(db) == LATEST_VERSION
    assert "half_done" not in db.table_names()

    def working(db: Database) -> None:
        db.execute("CREATE TABLE added_later (x INTEGER)")

    fixed = (*store_migrations.MIGRATIONS, store_migrations.Migration(LATEST_VERSION + 1, "works", working))
    assert store_migrations.migrate(db, store_path, fixed) == LATEST_VERSION + 1
    assert "added_later" in db.table_names()
    db.close()


def test_misnumbered_migration_list_is_rejected(store_path: Path) -> None:
    db = Database(sqlite3.connect(store_path), execute_plugins=False)
    skipping = (store_migrations.Migration(2, "skips 1", lambda db: None),)
    with pytest.raises(RuntimeError, match="numbered 2"):
        store_migrations.migrate(db, store_path, skipping)
    db.close()


def test_wal_synchronous_full_and_busy_timeout(store: Store, store_path: Path) -> None:
    diagnostics = store.diagnostics()
    assert diagnostics["journal_mode"] == "wal"
    assert diagnostics["synchronous"] == 2  # FULL
    assert diagnostics["busy_timeout_ms"] >= 1000
    # WAL is a property of the file, so the edge agent's own connection gets it too.
    assert pragma(store_path, "journal_mode") == "wal"


def test_transactions_table_has_no_room_for_personal_data(store_path: Path, store: Store) -> None:
    conn = raw(store_path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(transactions)")}
    conn.close()
    assert columns == {
        "id",
        "started_at",
        "finished_at",
        "status",
        "decision",
        "reasons",
        "stage_ms",
        "document_format",
        "nationality",
        "entitlement",
        "face_score",
        "kiosk_version",
        "config_version",
        "model_version",
        "reference_versions",
        "training",
        "provisional_decision",
        "provisional_reasons",
        "decided_at",
    }


# ---------------------------------------------------------------------------------------- transactions


def test_begin_records_in_progress_row_with_versions(store: Store) -> None:
    store.reference_data.apply("visa_exempt", "ve-12", [{"nationality": "MYS", "max_stay_days": 30}])
    txn_id = store.transactions.begin(versions=VERSIONS, training=True)

    row = store.transactions.get(txn_id)
    assert row["status"] == "in_progress"
    assert row["decision"] is None
    assert row["finished_at"] is None
    assert (row["kiosk_version"], row["config_version"], row["model_version"]) == ("0.1.0", "cfg-7", "face-2")
    assert row["reference_versions"] == {"visa_exempt": "ve-12"}
    assert row["training"] is True
    assert datetime.fromisoformat(row["started_at"]) == datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    assert store.transactions.count() == 1


def test_begin_rejects_unknown_version_keys(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown version key"):
        store.transactions.begin(versions={"kiosk": "1", "firmware": "2"}, training=False)
    assert store.transactions.count() == 0


def test_finish_updates_row_and_queues_event(store: Store, clock: FakeClock) -> None:
    txn_id = store.transactions.begin(versions=VERSIONS, training=False)
    clock.advance(seconds=4)
    event = finish(store, txn_id, reasons=["FACE_OK"])

    row = store.transactions.get(txn_id)
    assert row["status"] == "finished"
    assert row["decision"] == "OPEN"
    assert row["reasons"] == ["FACE_OK"]
    assert row["stage_ms"] == {"document_read": 812, "face_match": 440.5}
    assert (row["document_format"], row["nationality"], row["entitlement"]) == ("TD3", "MYS", "visa_exempt")
    assert row["face_score"] == pytest.approx(0.83)
    assert datetime.fromisoformat(row["finished_at"]) - datetime.fromisoformat(
        row["started_at"]
    ) == timedelta(seconds=4)

    assert event.type is EventType.TRANSACTION
    # Every fact once: the event is derived from the same record, plus the row's versions and flag.
    assert event.data == {
        "transaction_id": txn_id,
        "decision": "OPEN",
        "reasons": ["FACE_OK"],
        "stage_ms": {"document_read": 812, "face_match": 440.5},
        "path": ["document_read", "face_match", "done"],
        "document_format": "TD3",
        "nationality": "MYS",
        "entitlement": "visa_exempt",
        "document_pseudonym": "ab" * 32,
        "face": {"score": 0.83, "attempts": 2, "quality": {"sharpness": 0.7}},
        "fingerprint": {"score": None},
        "versions": VERSIONS,
        "training": False,
    }
    assert event.training is False
    assert store.outbox.pending(10) == [event]


def test_training_flag_follows_transaction_into_outbox(store: Store) -> None:
    txn_id = store.transactions.begin(versions=VERSIONS, training=True)
    event = finish(store, txn_id)
    assert event.training is True and event.data["training"] is True
    assert store.outbox.pending(10)[0].training is True


def test_decision_aborted_gives_status_aborted(store: Store) -> None:
    txn_id = store.transactions.begin(versions=VERSIONS, training=False)
    finish(store, txn_id, decision="ABORTED", reasons=["GATE_FAULT"], nationality=None, face_score=None)
    row = store.transactions.get(txn_id)
    assert (row["status"], row["decision"], row["face_score"]) == ("aborted", "ABORTED", None)


def test_finishing_twice_or_unknown_id_is_refused(store: Store) -> None:
    txn_id = store.transactions.begin(versions=VERSIONS, training=False)
    finish(store, txn_id)
    with pytest.raises(TransactionStateError, match="already finished"):
        finish(store, txn_id, decision="REFER")
    with pytest.raises(UnknownTransactionError):
        finish(store, "0190c0de-0000-7000-8000-000000000000")
    with pytest.raises(LookupError):
        store.transactions.get("0190c0de-0000-7000-8000-000000000000")
    assert store.transactions.get(txn_id)["decision"] == "OPEN"
    assert store.outbox.backlog() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("decision", "MAYBE"),
        ("nationality", "Malaysia"),
        ("reasons", "FACE_OK"),
        ("reasons", ["traveller said: Ahmad bin Ali"]),
        ("stage_ms", {"face": -1}),
        ("path", ["document_read", "Ahmad bin Ali"]),
        ("face_score", float("nan")),
        ("face_quality", {"frame": object()}),
        ("face_attempts", -1),
        ("document_pseudonym", "A1234567"),  # a raw document number, not a pseudonym
        ("fingerprint_score", 0.5),
    ],
)
def test_finish_rejects_bad_arguments_without_side_effects(store: Store, field: str, value: object) -> None:
    txn_id = store.transactions.begin(versions=VERSIONS, training=False)
    with pytest.raises(ValueError):
        finish(store, txn_id, **{field: value})
    assert store.transactions.get(txn_id)["status"] == "in_progress"
    assert store.outbox.backlog() == 0


def test_finish_is_atomic_when_outbox_insert_fails_in_sqlite(store: Store, store_path: Path) -> None:
    txn_id = store.transactions.begin(versions=VERSIONS, training=False)
    conn = raw(store_path)
    conn.execute(
        "CREATE TRIGGER injected_failure BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected'); END"
    )
    with pytest.raises(StoreError, match="injected"):
        finish(store, txn_id)
    # Seen from another connection: the UPDATE that preceded the failing INSERT was rolled back.
    status = conn.execute("SELECT status, decision FROM transactions WHERE id = ?", (txn_id,)).fetchone()
    assert status == ("in_progress", None)
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0

    conn.execute("DROP TRIGGER injected_failure")
    conn.close()
    event = finish(store, txn_id)
    assert store.transactions.get(txn_id)["status"] == "finished"
    assert store.outbox.pending(10) == [event]


def test_record_decision_is_provisional_until_finish(store: Store, clock: FakeClock) -> None:
    txn_id = store.transactions.begin(versions=VERSIONS, training=False)
    clock.advance(seconds=2)
    store.transactions.record_decision(txn_id, decision="REFER", reasons=["NO_ENTITLEMENT"])
    row = store.transactions.get(txn_id)
    assert (row["status"], row["decision"]) == ("in_progress", None)
    assert (row["provisional_decision"], row["provisional_reasons"]) == ("REFER", ["NO_ENTITLEMENT"])
    assert row["decided_at"] == "2025-03-01T08:00:02.000Z"
    assert store.outbox.backlog() == 0  # nothing is published for a provisional decision

    finish(store, txn_id, decision="REFER", reasons=["NO_ENTITLEMENT"])
    with pytest.raises(TransactionStateError):
        store.transactions.record_decision(txn_id, decision="OPEN", reasons=[])
    with pytest.raises(UnknownTransactionError):
        store.transactions.record_decision(
            "0190c0de-0000-7000-8000-000000000000", decision="OPEN", reasons=[]
        )
    with pytest.raises(ValueError):
        store.transactions.record_decision(
            store.transactions.begin(versions=VERSIONS, training=False), decision="?", reasons=[]
        )
    assert store.transactions.get(txn_id)["provisional_decision"] == "REFER"


def test_record_decision_failure_leaves_no_trace(store: Store, store_path: Path) -> None:
    txn_id = store.transactions.begin(versions=VERSIONS, training=False)
    conn = raw(store_path)
    conn.execute(
        "CREATE TRIGGER injected_failure BEFORE UPDATE ON transactions"
        " BEGIN SELECT RAISE(ABORT, 'injected'); END"
    )
    conn.close()
    with pytest.raises(StoreError, match="injected"):
        store.transactions.record_decision(txn_id, decision="OPEN", reasons=[])
    row = store.transactions.get(txn_id)
    assert (row["provisional_decision"], row["decided_at"]) == (None, None)


def test_transactions_listing_newest_first(store: Store, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(store.transactions.begin(versions=VERSIONS, training=False))
        clock.advance(seconds=1)
    assert [row["id"] for row in store.transactions.recent(limit=3)] == ids[::-1][:3]
    assert store.transactions.count() == 5
    with pytest.raises(ValueError):
        store.transactions.recent(limit=0)


CRASHING_KIOSK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kiosk.store import FinishedTransaction, Store

    store = Store.open(Path(sys.argv[1]))
    done = store.transactions.begin(versions={"kiosk": "0.1.0"}, training=False)
    store.transactions.finish(FinishedTransaction(id=done, decision="OPEN", face_score=0.9))
    live = store.transactions.begin(versions={"kiosk": "0.1.0"}, training=True)
    store.transactions.record_decision(live, decision="OPEN", reasons=[])  # about to open the door...
    print(done, live, flush=True)
    time.sleep(120)  # killed with SIGKILL long before this ends
    """
)


def test_abort_unfinished_after_sigkill(store_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_KIOSK, str(store_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=REPO_ROOT,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line, f"child died early: {child.stderr.read() if child.stderr else ''}"
        done_id, live_id = line.split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream:
                stream.close()
    assert child.returncode == -signal.SIGKILL

    with Store.open(store_path) as store:
        assert store.transactions.get(live_id)["status"] == "in_progress"  # the kill lost nothing committed
        assert store.transactions.abort_unfinished() == [live_id]

        aborted = store.transactions.get(live_id)
        assert (aborted["status"], aborted["decision"], aborted["reasons"]) == (
            "aborted",
            "ABORTED",
            ["INTERRUPTED"],
        )
        assert aborted["finished_at"] is not None
        assert store.transactions.get(done_id)["status"] == "finished"

        events = store.outbox.pending(10)
        assert [e.type for e in events] == [EventType.TRANSACTION, EventType.ALERT]
        assert events[1].data == {
            "alert": "transaction_interrupted",
            "transaction_id": live_id,
            "provisional_decision": "OPEN",
        }
        assert events[1].training is True
        assert store.transactions.abort_unfinished() == []


# ---------------------------------------------------------------------------------------- outbox


def test_pending_events_page_in_seq_order(store: Store) -> None:
    added = [store.outbox.add("audit", {"n": n}) for n in range(7)]
    seqs = [e.seq for e in added]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7

    pages, after = [], None
    while page := store.outbox.pending(3, after_seq=after):
        pages.append([e.data["n"] for e in page])
        after = page[-1].seq
    assert pages == [[0, 1, 2], [3, 4, 5], [6]]
    assert len({e.event_id for e in added}) == 7


def test_add_event_validates(store: Store) -> None:
    with pytest.raises(ValueError):
        store.outbox.add("gossip", {})
    with pytest.raises(ValueError):
        store.outbox.add("help", {"image": "base64..."})
    with pytest.raises(ValueError):
        store.outbox.add("help", {"raw": b"\x00\x01"})
    with pytest.raises(ValueError):
        store.outbox.add("help", {}, schema=0)
    assert store.outbox.backlog() == 0
    event = store.outbox.add(
        EventType.HELP, {"at": datetime(2025, 1, 1, tzinfo=UTC)}, training=True, schema=2
    )
    assert event.data == {"at": "2025-01-01T00:00:00.000Z"}
    assert (event.schema, event.training) == (2, True)


def test_mark_delivered_is_idempotent_and_shrinks_backlog(store: Store) -> None:
    events = [store.outbox.add("feedback", {"stars": n}) for n in range(4)]
    assert store.outbox.backlog() == 4
    assert store.outbox.mark_delivered([events[0].seq, events[2].seq]) == 2
    assert store.outbox.mark_delivered([events[0].seq]) == 0
    assert store.outbox.mark_delivered([]) == 0
    assert store.outbox.backlog() == 2
    assert [e.seq for e in store.outbox.pending(10)] == [events[1].seq, events[3].seq]
    delivered = store.outbox.get(events[0].seq)
    assert delivered is not None and delivered.delivered_at is not None


def test_seq_strictly_increases_across_compaction_and_reopen(store_path: Path, clock: FakeClock) -> None:
    with Store.open(store_path, now=clock.now) as store:
        first = [store.outbox.add("audit", {"n": n}) for n in range(5)]
        store.outbox.mark_delivered(e.seq for e in first)
        clock.advance(days=8)
        # Deletes everything, including the row holding the highest seq.
        assert store.outbox.compact(acked_through=5, delivered_before=clock.now() - timedelta(days=7)) == 5
        assert store.outbox.pending(10) == []
        after_compaction = store.outbox.add("audit", {"n": 5})
        assert after_compaction.seq > max(e.seq for e in first)
        store.outbox.mark_delivered([after_compaction.seq])
        clock.advance(days=8)
        assert store.outbox.compact(acked_through=after_compaction.seq, delivered_before=clock.now()) == 1

    with Store.open(store_path, now=clock.now) as store:
        after_reopen = store.outbox.add("audit", {"n": 6})
        assert after_reopen.seq > after_compaction.seq


def test_compact_keeps_undelivered_and_recently_delivered(store: Store, clock: FakeClock) -> None:
    old, recent, pending = (store.outbox.add("audit", {"n": n}) for n in range(3))
    store.outbox.mark_delivered([old.seq])
    clock.advance(days=10)
    store.outbox.mark_delivered([recent.seq])
    clock.advance(days=1)

    week_ago = clock.now() - timedelta(days=7)
    # Old and delivered is not enough: the hub has not acknowledged storing it.
    assert store.outbox.compact(acked_through=0, delivered_before=week_ago) == 0
    assert store.outbox.compact(acked_through=pending.seq, delivered_before=week_ago) == 1
    assert store.outbox.get(old.seq) is None
    assert store.outbox.get(recent.seq) is not None
    assert [e.seq for e in store.outbox.pending(10)] == [pending.seq]
    with pytest.raises(ValueError, match="naive"):
        store.outbox.compact(acked_through=pending.seq, delivered_before=datetime(2025, 1, 1))


outbox_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 3)),
        st.tuples(st.just("deliver"), st.integers(0, 4)),
        st.tuples(st.just("compact"), st.integers(0, 12)),  # the hub's watermark
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=outbox_ops)
def test_outbox_invariants_hold_for_any_operation_sequence(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "outbox.sqlite3"
        clock = FakeClock()
        store = Store.open(path, now=clock.now)
        issued: list[int] = []
        delivered: set[int] = set()
        try:
            for op, n in ops:
                if op == "add":
                    issued.extend(store.outbox.add("audit", {"i": len(issued)}).seq for _ in range(n))
                elif op == "deliver":
                    chosen = [s for s in issued if s not in delivered][:n]
                    assert store.outbox.mark_delivered(chosen) == len(chosen)
                    delivered.update(chosen)
                elif op == "compact":
                    clock.advance(seconds=1)
                    store.outbox.compact(acked_through=n, delivered_before=clock.now())
                else:
                    store.close()
                    store = Store.open(path, now=clock.now)
                clock.advance(seconds=1)
                assert issued == sorted(set(issued)), "seqs must strictly increase and never repeat"
                assert [e.seq for e in store.outbox.pending(1000)] == [
                    s for s in issued if s not in delivered
                ]
                assert store.outbox.backlog() == len(issued) - len(delivered)
        finally:
            store.close()


def test_two_connections_write_concurrently(store_path: Path) -> None:
    # Stands in for the kiosk and the edge agent: separate connections, separate locks.
    Store.open(store_path).close()
    errors: list[BaseException] = []
    seqs: list[int] = []
    lock = threading.Lock()

    def writer(tag: str) -> None:
        try:
            with Store.open(store_path) as own:
                for n in range(40):
                    seq = own.outbox.add("state", {"writer": tag, "n": n}).seq
                    with lock:
                        seqs.append(seq)
        except BaseException as exc:  # reported below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(seqs) == len(set(seqs)) == 80
    with Store.open(store_path) as store:
        assert store.outbox.backlog() == 80


def test_one_store_shared_by_worker_threads(store: Store) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(15):
                txn_id = store.transactions.begin(versions=VERSIONS, training=False)
                finish(store, txn_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert store.transactions.count() == 60
    assert store.outbox.backlog() == 60


def test_meta_persists(store_path: Path) -> None:
    with Store.open(store_path) as store:
        assert store.meta.get("mode") is None
        store.meta.set("mode", "maintenance")
        store.meta.set("mode", "in_service")
    with Store.open(store_path) as store:
        assert store.meta.get("mode") == "in_service"
        assert store.meta.all() == {"mode": "in_service"}


def test_closed_store_raises_store_error(store_path: Path) -> None:
    store = Store.open(store_path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.outbox.backlog()


# ---------------------------------------------------------------------------------------- failure modes


def test_missing_directory_is_an_error_not_created(tmp_path: Path) -> None:
    directory = tmp_path / "not-provisioned"
    path = directory / "gerbang.sqlite3"
    with pytest.raises(StoreError) as info:
        Store.open(path)
    assert str(directory) in str(info.value)
    assert "does not exist" in str(info.value)
    assert info.value.path == path
    assert not directory.exists()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="store-ro-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        for sub in directory.rglob("*"):
            if sub.is_dir():
                sub.chmod(stat.S_IRWXU)
        shutil.rmtree(directory)


def open_without_privileges(path: Path) -> str | None:
    """Open ``path`` as a user file permissions apply to; the StoreError message, or None if it opened.

    Root ignores directory permissions, so as root the attempt runs in a forked child that has
    dropped to ``nobody`` (a fresh interpreter could not even start: pyenv lives under /root).
    """
    if os.geteuid() != 0:
        try:
            Store.open(path).close()
        except StoreError as exc:
            return str(exc)
        return None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                Store.open(path).close()
                outcome = "opened"
            except StoreError as exc:
                outcome = f"StoreError:{exc}"
            except BaseException as exc:
                outcome = f"unexpected:{type(exc).__name__}: {exc}"
            os.write(write_end, outcome.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, outcome
    if outcome == "opened":
        return None
    assert outcome.startswith("StoreError:"), outcome
    return outcome.removeprefix("StoreError:")


def test_read_only_directory_for_new_store(shared_dir: Path) -> None:
    writable = shared_dir / "rw"
    writable.mkdir()
    writable.chmod(0o777)
    # Control: the same unprivileged user can create a store where it may write.
    assert open_without_privileges(writable / "gerbang.sqlite3") is None

    directory = shared_dir / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    path = directory / "gerbang.sqlite3"
    message = open_without_privileges(path)
    assert message is not None
    assert str(path) in message
    assert "not writable" in message
    assert not path.exists()


def test_read_only_directory_for_existing_store(shared_dir: Path) -> None:
    directory = shared_dir / "ro"
    directory.mkdir()
    directory.chmod(0o777)
    path = directory / "gerbang.sqlite3"
    with Store.open(path) as store:
        store.outbox.add("audit", {"n": 1})
    path.chmod(0o666)  # the file itself is writable; only the directory will not be
    assert open_without_privileges(path) is None

    directory.chmod(0o555)
    message = open_without_privileges(path)
    assert message is not None
    assert str(path) in message
    assert "not writable" in message
    directory.chmod(0o755)
    with Store.open(path) as store:
        assert store.outbox.backlog() == 1


def test_full_disk_raises_store_error_and_keeps_committed_data(store_path: Path) -> None:
    Store.open(store_path).close()
    size_cap = 96 * 1024
    stored: list[int] = []
    with Store.open(store_path, max_bytes=size_cap) as store:
        txn_id = store.transactions.begin(versions=VERSIONS, training=False)
        with pytest.raises(StoreError) as info:
            for n in range(10_000):
                stored.append(store.outbox.add("audit", {"n": n, "padding": "x" * 1500}).seq)
        assert str(store_path) in str(info.value)
        assert "full" in str(info.value)
        assert 0 < len(stored) < 10_000

        # With no room for its event, the finish must not half-happen.
        with pytest.raises(StoreError, match="full"):
            finish(store, txn_id, face_quality={f"figure_{i}": 0.5 for i in range(300)})
        assert store.transactions.get(txn_id)["status"] == "in_progress"
        assert store.outbox.backlog() == len(stored)

    with Store.open(store_path) as store:  # no cap: as after the operator freed space
        assert [e.seq for e in store.outbox.pending(10_000)] == stored
        assert [e.data["n"] for e in store.outbox.pending(10_000)] == list(range(len(stored)))
        finish(store, txn_id)
        assert store.transactions.get(txn_id)["status"] == "finished"


def test_file_that_is_not_a_database(store_path: Path) -> None:
    store_path.write_bytes(b"GIF89a" + os.urandom(8192))
    with pytest.raises(StoreError) as info:
        Store.open(store_path)
    assert str(store_path) in str(info.value)
    assert "not an SQLite database" in str(info.value)


def test_corrupt_pages_detected_at_open(store_path: Path) -> None:
    with Store.open(store_path) as store:
        for n in range(300):
            store.transactions.begin(versions=VERSIONS, training=False)
            store.outbox.add("audit", {"n": n, "padding": "z" * 200})
    page_size = pragma(store_path, "page_size")
    assert isinstance(page_size, int)
    data = bytearray(store_path.read_bytes())
    assert len(data) > 8 * page_size
    data[3 * page_size : 7 * page_size] = b"\xa5" * (4 * page_size)
    store_path.write_bytes(bytes(data))

    with pytest.raises(StoreError) as info:
        Store.open(store_path)
    assert str(store_path) in str(info.value)
    assert "corrupt" in str(info.value)

    # Without the start-up check the corruption still surfaces as a StoreError, never silently.
    with Store.open(store_path, check_integrity=False) as store, pytest.raises(StoreError, match="corrupt"):
        store.transactions.recent(limit=1000)


def test_outbox_rows_round_trip_as_json(store: Store, store_path: Path) -> None:
    event = store.outbox.add("alert", {"alert": "camera_failed", "detail": {"retries": 3, "ok": False}})
    conn = raw(store_path)
    payload, event_type, ts = conn.execute(
        "SELECT payload, type, ts FROM outbox WHERE seq = ?", (event.seq,)
    ).fetchone()
    conn.close()
    assert payload == event.payload  # byte for byte what the edge agent will publish
    assert json.loads(payload) == event.data
    assert event_type == "alert"
    assert ts == "2025-03-01T08:00:00.000Z"
    assert event.to_dict()["ts"] == ts


def test_add_many_is_all_or_nothing_and_backup_copies_a_live_store(store: Store, tmp_path: Path) -> None:
    added = store.outbox.add_many("audit", ({"n": n} for n in range(3)))
    assert [e.data for e in added] == [{"n": 0}, {"n": 1}, {"n": 2}]
    with pytest.raises(ValueError, match="personal or biometric"):
        store.outbox.add_many("audit", [{"n": 3}, {"surname": "ALI"}])
    assert store.outbox.backlog() == 3

    copy = tmp_path / "copy.sqlite3"
    store.backup(copy)
    with Store.open(copy) as copied:
        assert copied.outbox.pending(10) == store.outbox.pending(10)
