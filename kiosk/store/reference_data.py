"""Reference data in the store: versioned datasets synced from the hub, replaced atomically, and looked up.

Implements :class:`kiosk.reference_data.ReferenceDataLookup`, the read side the policy decides on.
Incoming datasets are validated first (:mod:`kiosk.store.dataset_validation`); a refused version
leaves the previous one in force.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlite_utils import Database

from kiosk.reference_data import Dataset, EVisaRecord, PolicyRules, WatchlistEntry
from kiosk.store.core import StoreCore, enum_value
from kiosk.store.dataset_validation import validate_dataset
from kiosk.store.errors import ReferenceDataError
from kiosk.store.records import DatasetInfo, from_iso

_TABLES = {
    Dataset.EVISA: "ref_evisa",
    Dataset.VISA_EXEMPT: "ref_visa_exempt",
    Dataset.WATCHLIST: "ref_watchlist",
    Dataset.POLICY: "ref_policy",
    Dataset.CHIP_TRUST: "ref_chip_trust",
}


def dataset_versions(db: Database) -> dict[str, str]:
    """The version in force per dataset, inside a read or write the caller holds."""
    return {str(n): str(v) for n, v in db.execute("SELECT name, version FROM ref_datasets ORDER BY name")}


class ReferenceData:
    def __init__(self, core: StoreCore) -> None:
        self._core = core

    # ------------------------------------------------------------------ write

    def apply(
        self, name: Dataset | str, version: str, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]
    ) -> None:
        """Validate and atomically replace the dataset ``name`` with ``version``.

        Raises :class:`ReferenceDataError` (previous version kept) on any invalid record, or when this
        version was already applied with different content. Re-applying identical content is a no-op.
        """
        validated = validate_dataset(name, version, records)
        table = _TABLES[validated.name]
        with self._core.write(f"apply {validated.name} dataset version {version}") as db:
            current = db.execute(
                "SELECT version, sha256 FROM ref_datasets WHERE name = ?", (validated.name.value,)
            ).fetchone()
            if current is not None and current[0] == version:
                if current[1] == validated.sha256:
                    return
                raise ReferenceDataError(
                    f"reference dataset {validated.name.value!r} version {version!r} is already applied with "
                    f"different content (sha256 {current[1]} vs {validated.sha256}); a version must identify "
                    "its content - refused, previous data kept"
                )
            # Inside one transaction: readers on other connections keep seeing the old snapshot (WAL)
            # until COMMIT, then the complete new one.
            db.execute(f"DELETE FROM {table}")
            if validated.rows:
                db[table].insert_all(validated.rows, batch_size=500)
            db.execute(
                "INSERT INTO ref_datasets (name, version, applied_at, record_count, sha256)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
                " applied_at = excluded.applied_at, record_count = excluded.record_count,"
                " sha256 = excluded.sha256",
                (
                    validated.name.value,
                    version,
                    self._core.timestamp(),
                    validated.record_count,
                    validated.sha256,
                ),
            )

    # ------------------------------------------------------------------ read (sync)

    def rows(self, name: Dataset | str, columns: Sequence[str]) -> tuple[str | None, list[dict[str, Any]]]:
        """The version in force and its rows (``columns`` of a list dataset), read in one snapshot."""
        dataset = Dataset(enum_value(name))
        if dataset is Dataset.POLICY:
            raise ValueError("the policy is one document, not rows")
        table = _TABLES[dataset]
        with self._core.read(f"read {dataset.value} rows") as db:
            # One read transaction: version and rows come from the same snapshot (WAL), without
            # holding the write lock the lane needs.
            db.execute("BEGIN")
            try:
                row = db.execute(
                    "SELECT version FROM ref_datasets WHERE name = ?", (dataset.value,)
                ).fetchone()
                rows = db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            finally:
                db.execute("COMMIT")
        return (None if row is None else str(row[0])), [dict(zip(columns, r, strict=True)) for r in rows]

    def datasets(self) -> list[DatasetInfo]:
        with self._core.read("read datasets") as db:
            rows = db.execute(
                "SELECT name, version, applied_at, record_count, sha256 FROM ref_datasets ORDER BY name"
            ).fetchall()
        return [DatasetInfo(n, v, from_iso(a), int(c), s) for n, v, a, c, s in rows]

    # ------------------------------------------------------------------ read (ReferenceDataLookup)

    def policy_rules(self) -> PolicyRules | None:
        with self._core.read("read policy") as db:
            row = db.execute("SELECT rules FROM ref_policy WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            return PolicyRules.model_validate_json(row[0])
        except ValidationError as exc:
            # Only reachable if the file was edited or written by a build with other rules.
            raise self._core.error(f"stored policy rules are unreadable: {exc}") from exc

    def evisa_records(self, document_hash: str) -> list[EVisaRecord]:
        with self._core.read("look up e-visa") as db:
            rows = db.execute(
                "SELECT document_hash, nationality, kind, valid_from, valid_until FROM ref_evisa"
                " WHERE document_hash = ? ORDER BY valid_from, valid_until, kind",
                (document_hash,),
            ).fetchall()
        return [
            EVisaRecord(
                document_hash=h,
                nationality=n,
                kind=k,
                valid_from=date.fromisoformat(f),
                valid_until=date.fromisoformat(u),
            )
            for h, n, k, f, u in rows
        ]

    def visa_exempt_max_stay(self, nationality: str) -> int | None:
        with self._core.read("look up visa exemption") as db:
            row = db.execute(
                "SELECT max_stay_days FROM ref_visa_exempt WHERE nationality = ?", (nationality,)
            ).fetchone()
        return None if row is None else int(row[0])

    def watchlist_hits(self, document_hash: str, person_hash: str) -> list[WatchlistEntry]:
        with self._core.read("look up watchlist") as db:
            rows = db.execute(
                "SELECT record_id, subject_hash, match_on, category FROM ref_watchlist"
                " WHERE (subject_hash = ? AND match_on = 'document')"
                " OR (subject_hash = ? AND match_on = 'person')"
                " ORDER BY match_on, category, record_id",
                (document_hash, person_hash),
            ).fetchall()
        return [WatchlistEntry(record_id=i, subject_hash=s, match_on=m, category=c) for i, s, m, c in rows]

    def dataset_versions(self) -> dict[str, str]:
        with self._core.read("read dataset versions") as db:
            return dataset_versions(db)
