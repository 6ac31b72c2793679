"""Reference datasets in the store: validation, atomic replacement, and the ReferenceDataLookup read side."""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.privacy import IdentifierHasher
from kiosk.reference_data import Dataset, EVisaRecord, PolicyRules, ReferenceDataLookup, WatchlistEntry
from kiosk.store import ReferenceDataError, Store, StoreError, canonical_sha256

HASHER = IdentifierHasher(b"test-fleet-key-0123456789abcdef")
PASSPORT = HASHER.document("MYS", "A12345678")
OTHER_PASSPORT = HASHER.document("AUS", "PA1234567")
PERSON = HASHER.person("MYS", "ALI", "AHMAD", date(1990, 5, 17))


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "gerbang.sqlite3"


@pytest.fixture
def store(store_path: Path) -> Iterator[Store]:
    with Store.open(store_path) as opened:
        yield opened


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=10)


def evisa(**overrides: Any) -> dict[str, Any]:
    record = {
        "document_hash": PASSPORT,
        "nationality": "MYS",
        "kind": "e-visa",
        "valid_from": "2025-01-01",
        "valid_until": "2025-12-31",
    }
    record.update(overrides)
    return record


_RECORD_IDS = itertools.count(1)


def watch(
    subject_hash: str, match_on: str = "document", category: str = "watchlist", record_id: str | None = None
) -> dict[str, str]:
    record_id = record_id or f"case-{next(_RECORD_IDS)}"  # the hub's own numbering, nothing personal
    return {"record_id": record_id, "subject_hash": subject_hash, "match_on": match_on, "category": category}


def synthetic_hash(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


POLICY = {
    "schema_version": 1,
    "citizen_nationality": "IDN",
    "allowed_document_codes": ["P", "PE"],
    "min_age_years": 16,
    "accepted_entitlements": ["visa_exempt", "e-visa"],
}


def lookups(reference_data: ReferenceDataLookup) -> tuple[object, ...]:
    """Everything the policy can see, through the protocol type only."""
    return (
        reference_data.policy_rules(),
        reference_data.evisa_records(PASSPORT),
        reference_data.visa_exempt_max_stay("MYS"),
        reference_data.watchlist_hits(PASSPORT, PERSON),
        reference_data.dataset_versions(),
    )


def test_empty_store_has_no_reference_data(store: Store) -> None:
    assert lookups(store.reference_data) == (None, [], None, [], {})


def test_apply_and_look_up_every_dataset(store: Store) -> None:
    store.reference_data.apply(Dataset.POLICY, "pol-3", POLICY)
    store.reference_data.apply(
        Dataset.EVISA,
        "ev-100",
        [
            evisa(kind="e-voa", valid_from="2025-06-01", valid_until="2025-07-01"),
            evisa(),
            evisa(document_hash=OTHER_PASSPORT, nationality="AUS"),
        ],
    )
    store.reference_data.apply(Dataset.VISA_EXEMPT, "ve-9", [{"nationality": "MYS", "max_stay_days": 30}])
    store.reference_data.apply(
        Dataset.WATCHLIST,
        "wl-41",
        [watch(PASSPORT, category="lost_stolen"), watch(PERSON, "person"), watch(OTHER_PASSPORT)],
    )

    policy, evisas, max_stay, hits, versions = lookups(store.reference_data)
    assert policy == PolicyRules(
        citizen_nationality="IDN",
        allowed_document_codes=("P", "PE"),
        min_age_years=16,
        accepted_entitlements=("visa_exempt", "e-visa"),
    )
    assert evisas == [
        EVisaRecord(PASSPORT, "MYS", "e-visa", date(2025, 1, 1), date(2025, 12, 31)),
        EVisaRecord(PASSPORT, "MYS", "e-voa", date(2025, 6, 1), date(2025, 7, 1)),
    ]
    assert max_stay == 30
    assert store.reference_data.visa_exempt_max_stay("AUS") is None
    assert hits == [
        WatchlistEntry(ANY, PASSPORT, "document", "lost_stolen"),
        WatchlistEntry(ANY, PERSON, "person", "watchlist"),
    ]
    # A person hash must not match a document entry, nor the other way round.
    assert store.reference_data.watchlist_hits(PERSON, PASSPORT) == []
    assert versions == {"evisa": "ev-100", "policy": "pol-3", "visa_exempt": "ve-9", "watchlist": "wl-41"}


def test_dataset_metadata_and_row_tags(store: Store, store_path: Path) -> None:
    records = [watch(synthetic_hash(f"w{n}")) for n in range(25)]
    store.reference_data.apply("watchlist", "wl-1", records)
    (info,) = store.reference_data.datasets()
    assert (info.name, info.version, info.record_count) == ("watchlist", "wl-1", 25)
    assert info.sha256 == canonical_sha256(records)
    assert info.applied_at.tzinfo is not None
    conn = raw(store_path)
    tags = conn.execute("SELECT DISTINCT dataset_version FROM ref_watchlist").fetchall()
    plan = " ".join(
        str(row[-1])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM ref_watchlist WHERE subject_hash = ?", ("x",)
        )
    )
    evisa_plan = " ".join(
        str(row[-1])
        for row in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM ref_evisa WHERE document_hash = ?", ("x",))
    )
    conn.close()
    assert tags == [("wl-1",)]
    assert "USING INDEX" in plan
    assert "USING INDEX" in evisa_plan


def test_new_version_replaces_old_completely(store: Store) -> None:
    store.reference_data.apply("watchlist", "wl-1", [watch(PASSPORT), watch(OTHER_PASSPORT)])
    store.reference_data.apply("watchlist", "wl-2", [watch(OTHER_PASSPORT, category="lost_stolen")])
    assert store.reference_data.watchlist_hits(PASSPORT, PERSON) == []
    assert store.reference_data.watchlist_hits(OTHER_PASSPORT, PERSON) == [
        WatchlistEntry(ANY, OTHER_PASSPORT, "document", "lost_stolen")
    ]
    assert store.reference_data.dataset_versions() == {"watchlist": "wl-2"}
    store.reference_data.apply("watchlist", "wl-3", [])  # an empty list is a valid, if short, watchlist
    assert store.reference_data.watchlist_hits(OTHER_PASSPORT, PERSON) == []
    assert store.reference_data.datasets()[0].record_count == 0


def test_reapplying_same_version_is_a_no_op_but_different_content_is_refused(store: Store) -> None:
    store.reference_data.apply("visa_exempt", "ve-1", [{"nationality": "MYS", "max_stay_days": 30}])
    applied_at = store.reference_data.datasets()[0].applied_at
    store.reference_data.apply("visa_exempt", "ve-1", [{"nationality": "MYS", "max_stay_days": 30}])
    assert store.reference_data.datasets()[0].applied_at == applied_at

    with pytest.raises(ReferenceDataError, match="already applied with different content"):
        store.reference_data.apply("visa_exempt", "ve-1", [{"nationality": "MYS", "max_stay_days": 60}])
    assert store.reference_data.visa_exempt_max_stay("MYS") == 30


BAD_EVISA_DATASETS: list[tuple[str, list[Any]]] = [
    ("not an ISO date", [evisa(), evisa(valid_until="31/12/2025")]),
    ("compact date form", [evisa(valid_from="20250101")]),
    ("impossible date", [evisa(valid_until="2025-02-30")]),
    ("until before from", [evisa(valid_from="2025-06-01", valid_until="2025-05-01")]),
    ("nationality not 3 letters", [evisa(nationality="MY")]),
    ("nationality lowercase", [evisa(nationality="mys")]),
    ("clear document number", [evisa(document_hash="A12345678")]),
    ("uppercase hash never matches", [evisa(document_hash=PASSPORT.upper())]),
    ("unknown key", [{**evisa(), "surname": "ALI"}]),
    ("missing key", [{k: v for k, v in evisa().items() if k != "kind"}]),
    ("record not an object", [evisa(), "e-visa"]),
    ("duplicate record", [evisa(), evisa()]),
]


@pytest.mark.parametrize(
    ("case", "records"), BAD_EVISA_DATASETS, ids=[case for case, _ in BAD_EVISA_DATASETS]
)
def test_bad_evisa_dataset_refused_and_old_version_kept(store: Store, case: str, records: list[Any]) -> None:
    good = [evisa()]
    store.reference_data.apply("evisa", "ev-1", good)
    with pytest.raises(ReferenceDataError) as info:
        store.reference_data.apply("evisa", "ev-2", records)
    assert "record " in str(info.value) and "'ev-2'" in str(info.value)
    assert info.value.problems
    assert store.reference_data.dataset_versions() == {"evisa": "ev-1"}
    assert store.reference_data.evisa_records(PASSPORT) == [
        EVisaRecord(PASSPORT, "MYS", "e-visa", date(2025, 1, 1), date(2025, 12, 31))
    ]


@pytest.mark.parametrize(
    "records",
    [
        [{"nationality": "THA", "max_stay_days": True}],
        [{"nationality": "THA", "max_stay_days": "30"}],
        [{"nationality": "THA", "max_stay_days": 30.0}],
        [{"nationality": "THA", "max_stay_days": 0}],
        [{"nationality": "THA", "max_stay_days": 30}, {"nationality": "THA", "max_stay_days": 60}],
        {"nationality": "THA", "max_stay_days": 30},
    ],
)
def test_bad_visa_exempt_dataset_refused(store: Store, records: Any) -> None:
    store.reference_data.apply("visa_exempt", "ve-1", [{"nationality": "MYS", "max_stay_days": 30}])
    with pytest.raises(ReferenceDataError):
        store.reference_data.apply("visa_exempt", "ve-2", records)
    assert store.reference_data.dataset_versions() == {"visa_exempt": "ve-1"}
    assert store.reference_data.visa_exempt_max_stay("THA") is None
    assert store.reference_data.visa_exempt_max_stay("MYS") == 30


def test_icao_filler_nationality_codes_are_accepted(store: Store) -> None:
    store.reference_data.apply("visa_exempt", "ve-1", [{"nationality": "D<<", "max_stay_days": 30}])
    assert store.reference_data.visa_exempt_max_stay("D<<") == 30


@pytest.mark.parametrize(
    "records",
    [
        [watch(PASSPORT, match_on="face")],
        [watch(PASSPORT, category="vip")],
        [watch(PASSPORT), watch(PASSPORT)],
        [watch(PASSPORT, record_id="case-1"), watch(OTHER_PASSPORT, record_id="case-1")],
        [watch(PASSPORT, record_id="Ahmad bin Ali")],  # an id is a code, not free text
    ],
)
def test_bad_watchlist_refused(store: Store, records: list[dict[str, str]]) -> None:
    store.reference_data.apply("watchlist", "wl-1", [watch(OTHER_PASSPORT)])
    with pytest.raises(ReferenceDataError):
        store.reference_data.apply("watchlist", "wl-2", records)
    assert store.reference_data.watchlist_hits(PASSPORT, PERSON) == []
    assert store.reference_data.watchlist_hits(OTHER_PASSPORT, PERSON) == [
        WatchlistEntry(ANY, OTHER_PASSPORT, "document", "watchlist")
    ]


def test_many_problems_are_all_counted(store: Store) -> None:
    records = [evisa(nationality=str(n)) for n in range(30)]
    with pytest.raises(ReferenceDataError) as info:
        store.reference_data.apply("evisa", "ev-1", records)
    assert len(info.value.problems) == 30
    assert "and 20 more" in str(info.value)


@pytest.mark.parametrize("schema_version", [2, 0, "1", True])
def test_unsupported_policy_schema_refused(store: Store, schema_version: object) -> None:
    store.reference_data.apply("policy", "pol-1", POLICY)
    with pytest.raises(ReferenceDataError, match=r"schema_version .* not supported"):
        store.reference_data.apply("policy", "pol-2", {**POLICY, "schema_version": schema_version})
    assert store.reference_data.dataset_versions() == {"policy": "pol-1"}
    rules = store.reference_data.policy_rules()
    assert rules is not None and rules.min_age_years == 16


@pytest.mark.parametrize(
    "policy",
    [
        {**POLICY, "min_age_years": -1},
        {**POLICY, "fingerprint_required": "sometimes"},
        {**POLICY, "country_specific_hack": True},
        [POLICY],
    ],
)
def test_invalid_policy_refused(store: Store, policy: Any) -> None:
    store.reference_data.apply("policy", "pol-1", POLICY)
    with pytest.raises(ReferenceDataError):
        store.reference_data.apply("policy", "pol-2", policy)
    rules = store.reference_data.policy_rules()
    assert rules is not None and rules.min_age_years == 16


def test_policy_without_schema_version_defaults_to_1(store: Store) -> None:
    store.reference_data.apply("policy", "pol-1", {"min_age_years": 12})
    rules = store.reference_data.policy_rules()
    assert rules is not None and (rules.schema_version, rules.min_age_years) == (1, 12)


@pytest.mark.parametrize(("name", "version"), [("photos", "v1"), ("watchlist", ""), ("watchlist", "v 1")])
def test_unknown_dataset_or_bad_version_refused(store: Store, name: str, version: str) -> None:
    with pytest.raises(ReferenceDataError):
        store.reference_data.apply(name, version, [])
    assert store.reference_data.dataset_versions() == {}


def test_failure_while_writing_keeps_previous_version(store: Store, store_path: Path) -> None:
    old = [watch(synthetic_hash(f"old-{n}")) for n in range(300)]
    new = [watch(synthetic_hash(f"new-{n}")) for n in range(300)]
    store.reference_data.apply("watchlist", "wl-1", old)
    conn = raw(store_path)
    # Fails on the very last row, after the DELETE and 299 INSERTs of the new version ran.
    conn.execute(
        "CREATE TRIGGER injected_failure BEFORE INSERT ON ref_watchlist"
        f" WHEN NEW.subject_hash = '{new[-1]['subject_hash']}' BEGIN SELECT RAISE(ABORT, 'injected'); END"
    )
    with pytest.raises(StoreError, match="injected"):
        store.reference_data.apply("watchlist", "wl-2", new)
    rows = {row[0] for row in conn.execute("SELECT subject_hash FROM ref_watchlist")}
    conn.close()
    assert rows == {r["subject_hash"] for r in old}
    assert store.reference_data.dataset_versions() == {"watchlist": "wl-1"}


def test_concurrent_reader_sees_old_or_new_never_partial(store_path: Path) -> None:
    rows_per_version = 1500
    versions = [f"wl-{n}" for n in range(6)]
    expected = {
        version: frozenset(synthetic_hash(f"{version}:{n}") for n in range(rows_per_version))
        for version in versions
    }
    writer = Store.open(store_path)
    writer.reference_data.apply("watchlist", versions[0], [watch(h) for h in sorted(expected[versions[0]])])

    stop = threading.Event()
    seen: list[str] = []
    seen_changed = threading.Condition()
    problems: list[str] = []

    def reader() -> None:
        # Its own connection, as the edge agent or a second kiosk process would have.
        conn = raw(store_path)
        try:
            while not stop.is_set():
                conn.execute("BEGIN")
                version = conn.execute(
                    "SELECT version FROM ref_datasets WHERE name = 'watchlist'"
                ).fetchone()[0]
                rows = conn.execute("SELECT subject_hash, dataset_version FROM ref_watchlist").fetchall()
                conn.execute("COMMIT")
                hashes = frozenset(h for h, _ in rows)
                if hashes != expected[version] or {tag for _, tag in rows} != {version}:
                    problems.append(f"{version}: {len(rows)} rows, tags {sorted({tag for _, tag in rows})}")
                with seen_changed:
                    seen.append(version)
                    seen_changed.notify_all()
        except BaseException as exc:
            problems.append(repr(exc))
        finally:
            conn.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in versions[1:]:
            reads_before = len(seen)
            writer.reference_data.apply("watchlist", version, [watch(h) for h in sorted(expected[version])])
            # Wait until the reader has seen this version, so every version is observed at least once.
            with seen_changed:
                assert seen_changed.wait_for(
                    lambda v=version, start=reads_before: v in seen[start:], timeout=30
                )
    finally:
        stop.set()
        thread.join(timeout=30)
        writer.close()
    assert problems == []
    assert set(seen) == set(versions)


def test_second_store_sees_applied_dataset_immediately(store_path: Path) -> None:
    with Store.open(store_path) as kiosk, Store.open(store_path) as agent:
        agent.reference_data.apply("watchlist", "wl-1", [watch(PASSPORT)])
        assert kiosk.reference_data.watchlist_hits(PASSPORT, PERSON) == [
            WatchlistEntry(ANY, PASSPORT, "document", "watchlist")
        ]
        started = time.monotonic()
        kiosk.reference_data.apply("watchlist", "wl-2", [])
        assert agent.reference_data.dataset_versions() == {"watchlist": "wl-2"}
        assert time.monotonic() - started < 5


exempt_tables = st.dictionaries(
    keys=st.from_regex(r"[A-Z][A-Z<]{2}", fullmatch=True),
    values=st.integers(min_value=1, max_value=3650),
    max_size=40,
)


@settings(max_examples=30, deadline=None)
@given(table=exempt_tables, probe=st.from_regex(r"[A-Z][A-Z<]{2}", fullmatch=True))
def test_visa_exempt_round_trip(
    tmp_path_factory: pytest.TempPathFactory, table: dict[str, int], probe: str
) -> None:
    path = tmp_path_factory.getbasetemp() / "round-trip.sqlite3"
    with Store.open(path) as store:
        records = [{"nationality": code, "max_stay_days": days} for code, days in table.items()]
        version = canonical_sha256(records)[:16]
        store.reference_data.apply("visa_exempt", version, records)
        for code, days in table.items():
            assert store.reference_data.visa_exempt_max_stay(code) == days
        assert store.reference_data.visa_exempt_max_stay(probe) == table.get(probe)
        assert store.reference_data.datasets()[0].record_count == len(table)
