"""Validation of incoming reference datasets, before any of them touches the database.

A dataset is all-or-nothing: one bad record refuses the whole version, because a half-understood
watchlist is worse than yesterday's complete one. Records are checked strictly (exact types, no
unknown keys): a hub-side schema change must fail loudly here rather than silently never match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from kiosk.chip.trust import TrustStore
from kiosk.chip.trust_dataset import NOT_AFTER_PATTERN, add_records
from kiosk.reference_data import SUPPORTED_POLICY_SCHEMAS, Dataset, PolicyRules
from kiosk.store.errors import ReferenceDataError
from kiosk.store.records import canonical_sha256, dumps

# Hex HMAC-SHA256 as produced by kiosk.privacy.IdentifierHasher; lowercase only, because the kiosk
# looks up hexdigest() output and an uppercase hash would silently never match.
HASH_PATTERN = r"^[0-9a-f]{64}$"
# ICAO 9303 three-letter codes, including filler-padded ones such as "D<<" (Germany).
NATIONALITY_PATTERN = r"^[A-Z][A-Z<]{2}$"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_VERSION = re.compile(r"^[\x21-\x7e]{1,100}$")
MAX_PROBLEMS_IN_MESSAGE = 10


def _iso_date(value: object) -> date:
    # date.fromisoformat alone also takes "20250101" and week dates; the hub contract is YYYY-MM-DD.
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be an ISO date string YYYY-MM-DD")
    return date.fromisoformat(value)


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Hash = Annotated[str, StringConstraints(pattern=HASH_PATTERN)]
Nationality = Annotated[str, StringConstraints(pattern=NATIONALITY_PATTERN)]
Kind = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
RECORD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
RecordId = Annotated[str, StringConstraints(pattern=RECORD_ID_PATTERN)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class EVisaRow(_Record):
    document_hash: Hash
    nationality: Nationality
    kind: Kind
    valid_from: IsoDate
    valid_until: IsoDate

    @model_validator(mode="after")
    def _ordered(self) -> EVisaRow:
        if self.valid_until < self.valid_from:
            raise ValueError(f"valid_until {self.valid_until} is before valid_from {self.valid_from}")
        return self


class VisaExemptRow(_Record):
    nationality: Nationality
    max_stay_days: int = Field(ge=1, le=3650)


class WatchlistRow(_Record):
    # The hub's own id of the record: what a hit alert names instead of the keyed hash. Never
    # derived from the person or the document.
    record_id: RecordId
    subject_hash: Hash
    match_on: Literal["document", "person"]
    category: Literal["watchlist", "lost_stolen"]


class ChipTrustRow(_Record):
    """One CSCA certificate, master list or CRL (kiosk.chip.trust_dataset); the shape is checked here,
    the object itself by :func:`_chip_trust_problems`."""

    kind: Literal["csca", "master_list", "crl"]
    # base64 of at most 16 MiB of DER (the trust store's own limit on one object)
    der: str = Field(min_length=4, max_length=22_369_624, pattern=r"^[A-Za-z0-9+/]+={0,2}$")
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    subject: str = Field(max_length=2048)
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None
    not_after: Annotated[str, StringConstraints(pattern=NOT_AFTER_PATTERN)] | None


_ROW_MODELS: dict[Dataset, type[_Record]] = {
    Dataset.EVISA: EVisaRow,
    Dataset.VISA_EXEMPT: VisaExemptRow,
    Dataset.WATCHLIST: WatchlistRow,
    Dataset.CHIP_TRUST: ChipTrustRow,
}

# What makes two records the same (each key separately); a repeated key is refused rather than
# guessed about.
_IDENTITY: dict[Dataset, tuple[tuple[str, ...], ...]] = {
    Dataset.EVISA: (("document_hash", "nationality", "kind", "valid_from", "valid_until"),),
    Dataset.VISA_EXEMPT: (("nationality",),),
    Dataset.WATCHLIST: (("subject_hash", "match_on", "category"), ("record_id",)),
    Dataset.CHIP_TRUST: (("sha256",),),
}


def _chip_trust_problems(rows: list[dict[str, Any]]) -> list[str]:
    """Every object checked as ``chip trust import`` checks a file, and its summary against it."""
    return add_records(TrustStore(), rows)


# Checks of the whole dataset, once every record has the right shape.
_DATASET_CHECKS = {Dataset.CHIP_TRUST: _chip_trust_problems}


@dataclass(frozen=True)
class ValidatedDataset:
    name: Dataset
    version: str
    # Rows ready for the dataset's table, each tagged with ``dataset_version``.
    rows: list[dict[str, Any]]
    record_count: int
    sha256: str


def _format_errors(prefix: str, exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "record"
        problems.append(f"{prefix}{where}: {error['msg']}")
    return problems


def _refuse(name: str, version: str, problems: list[str]) -> ReferenceDataError:
    shown = problems[:MAX_PROBLEMS_IN_MESSAGE]
    more = len(problems) - len(shown)
    text = "; ".join(shown) + (f"; ... and {more} more" if more else "")
    return ReferenceDataError(
        f"reference dataset {str(name)!r} version {version!r} refused, previous version kept: {text}",
        problems=problems,
    )


def validate_dataset(
    name: Dataset | str, version: str, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]
) -> ValidatedDataset:
    """Check every record of ``name`` @ ``version``; raise :class:`ReferenceDataError` on any problem."""
    try:
        dataset = Dataset(name)
    except ValueError:
        known = ", ".join(d.value for d in Dataset)
        raise ReferenceDataError(f"unknown reference dataset {name!r} (known: {known})") from None
    if not isinstance(version, str) or not _VERSION.match(version):
        raise _refuse(dataset, str(version), ["version must be 1-100 printable characters without spaces"])
    try:
        sha256 = canonical_sha256(records)
    except ValueError as exc:
        raise _refuse(dataset, version, [str(exc)]) from None
    if dataset is Dataset.POLICY:
        return _validate_policy(version, records, sha256)
    return _validate_rows(dataset, version, records, sha256)


def _validate_policy(version: str, records: object, sha256: str) -> ValidatedDataset:
    if not isinstance(records, Mapping):
        raise _refuse(
            Dataset.POLICY, version, [f"policy must be one JSON object, not {type(records).__name__}"]
        )
    schema = records.get("schema_version", 1)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema not in SUPPORTED_POLICY_SCHEMAS:
        supported = ", ".join(str(s) for s in sorted(SUPPORTED_POLICY_SCHEMAS))
        raise _refuse(
            Dataset.POLICY,
            version,
            [f"policy schema_version {schema!r} is not supported by this build (supported: {supported})"],
        )
    try:
        rules = PolicyRules.model_validate(dict(records))
    except ValidationError as exc:
        raise _refuse(Dataset.POLICY, version, _format_errors("policy.", exc)) from None
    row = {
        "id": 1,
        "schema_version": rules.schema_version,
        "rules": dumps(rules.model_dump(mode="json")),
        "dataset_version": version,
    }
    return ValidatedDataset(Dataset.POLICY, version, [row], 1, sha256)


def _validate_rows(dataset: Dataset, version: str, records: object, sha256: str) -> ValidatedDataset:
    if isinstance(records, Mapping | str | bytes) or not isinstance(records, Sequence):
        raise _refuse(dataset, version, [f"records must be a list of objects, not {type(records).__name__}"])
    model = _ROW_MODELS[dataset]
    identities = _IDENTITY[dataset]
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for index, record in enumerate(records):
        prefix = f"record {index}: "
        if not isinstance(record, Mapping):
            problems.append(f"{prefix}must be an object, not {type(record).__name__}")
            continue
        try:
            parsed = model.model_validate(dict(record))
        except ValidationError as exc:
            problems.extend(_format_errors(prefix, exc))
            continue
        row = parsed.model_dump(mode="json")
        keys = [(identity, *(row[column] for column in identity)) for identity in identities]
        duplicated = next((seen[key] for key in keys if key in seen), None)
        if duplicated is not None:
            problems.append(f"{prefix}duplicates record {duplicated}")
            continue
        seen.update(dict.fromkeys(keys, index))
        rows.append(row)
    if not problems and dataset in _DATASET_CHECKS:
        problems = _DATASET_CHECKS[dataset](rows)
    if problems:
        raise _refuse(dataset, version, problems)
    for row in rows:
        row["dataset_version"] = version
    return ValidatedDataset(dataset, version, rows, len(rows), sha256)
