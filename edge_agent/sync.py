"""Signed reference-data bundles from the hub: verified, checked against what is in force, applied atomically.

A bundle decides who the gate lets through (watchlist, e-visas, visa exemptions, policy), so nothing in
it is trusted before its Ed25519 signature checks out, and a bundle that fails any check leaves the
previous version in force and raises an alert (and an audit event) that reaches the hub through the
outbox. Bundles are retained on the broker, so the current one arrives again on every connect: a bundle
already applied is recognised by the hash of its bytes *and* the dataset actually in force (its version
and content digest in the reference-data tables, the settings file, the fleet key id), and only then
ignored without parsing or alerting - anything that changed the data behind the agent's back (a
simulation on this database, a restored backup) is undone by the next delivery.

Hashed datasets (watchlist, e-visa) name the fleet key their records were hashed under and are refused
unless this kiosk holds that key. Policy and settings bundles are held to the kiosk's own ``[safety]``
floors (kiosk.safety_floors, config.floors).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from config import HUB_CONFIG_FILE, Config, SafetyFloorError, SafetySection, with_hub_settings
from contract.bundles import (
    BUNDLE_SCHEMA,
    CONFIG_DATASET,
    DATASETS,
    FIELDS,
    FLEET_KEY_ID_LENGTH,
    FULL_ONLY,
    HASHED_DATASETS,
    KINDS,
    MAX_BUNDLE_BYTES,
    records_sha256,
)
from contract.signing import canonical, signature_valid
from contract.topics import SEGMENT, Topics
from edge_agent.publisher import Outgoing
from kiosk.reference_data import HUB_SOURCE, SOURCE_META, Dataset, PolicyRules
from kiosk.safety_floors import policy_floor_violation
from kiosk.store import ReferenceDataError, Request, Store, canonical_sha256
from kiosk.store.dataset_validation import ChipTrustRow, EVisaRow, VisaExemptRow, WatchlistRow

log = logging.getLogger(__name__)

REASONS = (
    "too_large",
    "malformed",
    "bad_signature",
    "unknown_dataset",
    "wrong_site",
    "wrong_dataset",
    "checksum",
    "rollback",
    "version_conflict",
    "base_mismatch",
    "invalid_records",
    "fleet_key_missing",
    "fleet_key_mismatch",
    "safety_floor",
)
APPLIED_META = "sync_applied:{}"
REJECTED_META = "sync_rejected:{}"
# Same rule as kiosk.store.dataset_validation: a version string that can be stored is also safe to report.
_VERSION = re.compile(r"^[\x21-\x7e]{1,100}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(rf"^[0-9a-f]{{{FLEET_KEY_ID_LENGTH}}}$")
# The record fields the hub sends, per list dataset: what a delta's base and a re-sent version are read as.
_ROW_COLUMNS: dict[Dataset, tuple[str, ...]] = {
    Dataset.EVISA: tuple(EVisaRow.model_fields),
    Dataset.VISA_EXEMPT: tuple(VisaExemptRow.model_fields),
    Dataset.WATCHLIST: tuple(WatchlistRow.model_fields),
    Dataset.CHIP_TRUST: tuple(ChipTrustRow.model_fields),
}


class Rejected(Exception):
    def __init__(self, reason: str, version: str | None = None, setting: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.version = version
        self.setting = setting  # the safety setting a bundle tried to go past


@dataclass(frozen=True)
class Bundle:
    dataset: Dataset | str  # a Dataset, or CONFIG_DATASET
    version: str
    kind: str
    base_version: str | None
    issued_at: datetime
    records: Any


@dataclass(frozen=True)
class SyncOutcome:
    # applied | unchanged | rejected (with reason) | repeated (the same rejected bytes again: no new alert)
    # | cleared (an empty message: the hub deleted the retained bundle; what is in force stays)
    status: str
    dataset: str | None
    version: str | None = None
    reason: str | None = None
    records: int | None = None


@dataclass
class SyncStats:
    received: int = 0
    applied: int = 0
    unchanged: int = 0
    rejected: int = 0
    repeated: int = 0
    cleared: int = 0
    last: SyncOutcome | None = field(default=None)


def _name(dataset: Dataset | str) -> str:
    return dataset.value if isinstance(dataset, Dataset) else dataset


def write_atomically(path: Path, text: str) -> None:
    """Old or new file, never half of one, even across a power cut: temp file, fsync, rename, fsync dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _utc(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("not a string")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(UTC)


class SyncHandler:
    """Inbound handler for ``gerbang/v1/{site}/sync/+``: no MQTT reply, the outbox carries the alerts."""

    def __init__(
        self,
        store: Store,
        topics: Topics,
        hub_key: Ed25519PublicKey,
        config: Config | None = None,
        *,
        fleet_key_id: Callable[[], str | None],
    ) -> None:
        # ``config``: this kiosk's configuration, against which a settings bundle is validated; without
        # it, settings bundles are refused as an unknown dataset, and the default safety floors apply.
        # ``fleet_key_id``: the id of the fleet key this kiosk holds now (None: none provisioned).
        self.config = config
        self.floors = config.safety if config is not None else SafetySection()
        self.store = store
        self.topics = topics
        self.hub_key = hub_key
        self.fleet_key_id = fleet_key_id
        self.stats = SyncStats()

    def subscriptions(self) -> list[str]:
        return [self.topics.sync_filter]

    def handle(self, topic: str, payload: bytes, retained: bool) -> Sequence[Outgoing]:
        self.process(topic, payload)
        return []

    # ------------------------------------------------------------------ pipeline
    def process(self, topic: str, payload: bytes) -> SyncOutcome:
        self.stats.received += 1
        segment = topic.rsplit("/", 1)[-1]
        known = segment if segment in DATASETS else None
        if not payload:
            # MQTT's way of deleting a retained message; it reaches current subscribers too. Not a bundle,
            # and nothing to alert about: withdrawing a bundle never withdraws the data in force.
            return self._count(SyncOutcome("cleared", known))
        digest = hashlib.sha256(payload).hexdigest()
        if known is not None:
            in_force = self._in_force(known)
            applied = self._meta(APPLIED_META.format(known))
            if applied.get("payload_sha256") == digest and applied.get("in_force") == in_force:
                # The retained bundle again (every reconnect, every sync_now): already verified and in force.
                return self._count(SyncOutcome("unchanged", known, applied.get("version")))
            rejected = self._meta(REJECTED_META.format(known))
            if rejected.get("payload_sha256") == digest and rejected.get("in_force") == in_force:
                # Same bytes, same store state, same verdict: one alert per bad bundle, not one per reconnect.
                outcome = SyncOutcome("repeated", known, rejected.get("version"), rejected.get("reason"))
                return self._count(outcome)
        try:
            bundle = self._verify(topic, segment, payload)
            outcome = self._apply(bundle, digest)
        except Rejected as exc:
            return self._reject(known or (segment if SEGMENT.match(segment) else None), exc, digest)
        return self._count(outcome)

    def _count(self, outcome: SyncOutcome) -> SyncOutcome:
        setattr(self.stats, outcome.status, getattr(self.stats, outcome.status) + 1)
        self.stats.last = outcome
        return outcome

    def _reject(self, dataset: str | None, exc: Rejected, digest: str) -> SyncOutcome:
        log.warning(
            "sync bundle refused: dataset=%s version=%s reason=%s setting=%s",
            dataset,
            exc.version,
            exc.reason,
            exc.setting,
        )
        alert = {"alert": "sync_rejected", "dataset": dataset, "version": exc.version, "reason": exc.reason}
        self.store.outbox.add("alert", alert)
        refused = {"audit": "bundle_refused", **alert, "setting": exc.setting}
        del refused["alert"]
        self.store.outbox.add("audit", refused)
        if dataset in DATASETS:
            record = {
                "payload_sha256": digest,
                "reason": exc.reason,
                "version": exc.version,
                "in_force": self._in_force(dataset),
            }
            self.store.meta.set(REJECTED_META.format(dataset), json.dumps(record, sort_keys=True))
        return self._count(SyncOutcome("rejected", dataset, exc.version, exc.reason))

    def _meta(self, key: str) -> dict[str, Any]:
        raw = self.store.meta.get(key)
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def _in_force(self, dataset: str) -> dict[str, Any]:
        """What decides at the gate now for ``dataset``, as stored (not as the agent remembers it)."""
        if dataset == CONFIG_DATASET:
            return self._settings_in_force()
        info = next((d for d in self.store.reference_data.datasets() if d.name == dataset), None)
        state: dict[str, Any] = {} if info is None else {"version": info.version, "sha256": info.sha256}
        if dataset in HASHED_DATASETS:
            state["fleet_key_id"] = self.fleet_key_id()
        return state

    def _settings_in_force(self) -> dict[str, Any]:
        if self.config is None:
            return {}
        try:
            stored = json.loads((self.config.data_dir / HUB_CONFIG_FILE).read_text(encoding="utf-8"))
            return {"version": str(stored["version"]), "records_sha256": records_sha256(stored["settings"])}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    # ------------------------------------------------------------------ checks
    def _verify(self, topic: str, segment: str, payload: bytes) -> Bundle:
        if len(payload) > MAX_BUNDLE_BYTES:
            raise Rejected("too_large")
        try:
            body = json.loads(payload)
        except (ValueError, RecursionError):
            raise Rejected("malformed") from None
        if not isinstance(body, dict) or not isinstance(body.get("signature"), str):
            raise Rejected("malformed")
        # Signature first: nothing in an unauthenticated message is worth trusting or reporting on.
        if not signature_valid(self.hub_key, body):
            raise Rejected("bad_signature")
        version = body.get("version")
        version = version if isinstance(version, str) and _VERSION.match(version) else None
        if set(body) != FIELDS or version is None:
            raise Rejected("malformed", version)
        schema, kind, base = body["schema"], body["kind"], body["base_version"]
        if type(schema) is not int or schema != BUNDLE_SCHEMA or kind not in KINDS:
            raise Rejected("malformed", version)
        if not isinstance(body["dataset"], str) or not isinstance(body["site"], str):
            raise Rejected("malformed", version)
        try:
            issued_at = _utc(body["issued_at"])
        except ValueError:
            raise Rejected("malformed", version) from None
        dataset: Dataset | str
        if body["dataset"] == CONFIG_DATASET and self.config is not None:
            dataset = CONFIG_DATASET
        else:
            try:
                dataset = Dataset(body["dataset"])
            except ValueError:
                raise Rejected("unknown_dataset", version) from None
        records = body["records"]
        if dataset == CONFIG_DATASET and (kind != "full" or not isinstance(records, dict)):
            raise Rejected("malformed", version)
        if kind == "full" and base is not None:
            raise Rejected("malformed", version)
        if kind == "delta" and not self._delta_shape(dataset, base, records):
            raise Rejected("malformed", version)
        if body["site"] != self.topics.site or not topic.startswith(self.topics.sync_filter[:-1]):
            raise Rejected("wrong_site", version)
        if _name(dataset) != segment:
            raise Rejected("wrong_dataset", version)
        expected = body["records_sha256"]
        if not isinstance(expected, str) or not _SHA256.match(expected):
            raise Rejected("malformed", version)
        if records_sha256(records) != expected:
            raise Rejected("checksum", version)
        self._check_fleet_key(_name(dataset), body["fleet_key_id"], version)
        return Bundle(dataset, version, kind, base, issued_at, records)

    def _check_fleet_key(self, dataset: str, named: object, version: str) -> None:
        if dataset not in HASHED_DATASETS:
            if named is not None:
                raise Rejected("malformed", version)
            return
        if not isinstance(named, str) or not _KEY_ID.match(named):
            raise Rejected("malformed", version)
        held = self.fleet_key_id()
        if held is None:
            # Nothing to match with: applied now, a key provisioned later might not be the one it names.
            raise Rejected("fleet_key_missing", version)
        if named != held:
            raise Rejected("fleet_key_mismatch", version)

    @staticmethod
    def _delta_shape(dataset: Dataset, base: object, records: object) -> bool:
        if dataset in FULL_ONLY or not isinstance(base, str) or not _VERSION.match(base):
            return False
        if not isinstance(records, dict) or set(records) != {"add", "remove"}:
            return False
        return all(
            isinstance(part, list) and all(isinstance(r, dict) for r in part)
            for part in (records["add"], records["remove"])
        )

    # ------------------------------------------------------------------ apply
    def _apply(self, bundle: Bundle, digest: str) -> SyncOutcome:
        name = _name(bundle.dataset)
        applied = self._meta(APPLIED_META.format(name))
        try:
            previous = _utc(applied.get("issued_at"))
        except ValueError:
            previous = None
        if previous is not None and bundle.issued_at < previous:
            # An older signed bundle replayed (or a stale retained one) must not undo a newer watchlist.
            raise Rejected("rollback", bundle.version)
        if bundle.dataset == CONFIG_DATASET:
            return self._apply_settings(bundle, digest)
        if bundle.dataset is Dataset.POLICY:
            self._check_policy_floors(bundle)
        info = next((d for d in self.store.reference_data.datasets() if d.name == name), None)
        if info is not None and info.version == bundle.version:
            # In force already (e.g. the agent stopped between applying and recording the bundle).
            if bundle.kind == "full" and not self._same_content(bundle, info.sha256):
                raise Rejected("version_conflict", bundle.version)
            self._remember(bundle, digest)
            return SyncOutcome("unchanged", name, bundle.version, records=info.record_count)
        if bundle.kind == "delta":
            current = None if info is None else info.version
            if bundle.base_version != current:
                raise Rejected("base_mismatch", bundle.version)
            records = self._patched(bundle)
        else:
            records = bundle.records
        try:
            # One SQLite transaction: readers on other connections see the old or the new set, never a mix.
            self.store.reference_data.apply(bundle.dataset, bundle.version, records)
        except ReferenceDataError as exc:
            log.warning("sync bundle %s %s has invalid records: %s", name, bundle.version, exc)
            raise Rejected("invalid_records", bundle.version) from None
        self._remember(bundle, digest)
        count = 1 if bundle.dataset is Dataset.POLICY else len(records)
        self.store.outbox.add(
            "audit",
            {
                "audit": "dataset_applied",
                "dataset": name,
                "version": bundle.version,
                "kind": bundle.kind,
                "records": count,
            },
        )
        log.info("applied %s bundle %s version %s (%d records)", bundle.kind, name, bundle.version, count)
        return SyncOutcome("applied", name, bundle.version, records=count)

    def _check_policy_floors(self, bundle: Bundle) -> None:
        try:
            rules = PolicyRules.model_validate(bundle.records)
        except ValidationError:
            return  # not a policy at all: the store's validation refuses it as invalid_records
        violation = policy_floor_violation(rules, self.floors)
        if violation is not None:
            setting, detail = violation
            log.warning("policy bundle %s refused: %s: %s", bundle.version, setting, detail)
            raise Rejected("safety_floor", bundle.version, setting=setting)

    def _apply_settings(self, bundle: Bundle, digest: str) -> SyncOutcome:
        """The hub's fleet settings: validated against this kiosk's config, written for its next start."""
        assert self.config is not None
        settings_sha256 = records_sha256(bundle.records)
        in_force = self._settings_in_force()
        if in_force.get("version") == bundle.version:
            if in_force.get("records_sha256") != settings_sha256:
                raise Rejected("version_conflict", bundle.version)
            self._remember(bundle, digest)
            return SyncOutcome("unchanged", CONFIG_DATASET, bundle.version, records=len(bundle.records))
        try:
            with_hub_settings(self.config, bundle.records, bundle.version)
        except SafetyFloorError as exc:
            log.warning("settings bundle %s refused: %s", bundle.version, exc)
            raise Rejected("safety_floor", bundle.version, setting=exc.setting) from None
        except ValueError as exc:
            log.warning("settings bundle %s refused: %s", bundle.version, exc)
            raise Rejected("invalid_records", bundle.version) from None
        write_atomically(
            self.config.data_dir / HUB_CONFIG_FILE,
            json.dumps({"version": bundle.version, "settings": bundle.records}, sort_keys=True, indent=1),
        )
        self._remember(bundle, digest)
        self.store.outbox.add(
            "audit",
            {
                "audit": "dataset_applied",
                "dataset": CONFIG_DATASET,
                "version": bundle.version,
                "kind": bundle.kind,
                "records": len(bundle.records),
            },
        )
        # The kiosk reads its configuration at start: it restarts between travellers to take them up.
        self.store.requests.post(Request(str(uuid.uuid4()), "reload_config", {}))
        log.info("applied settings bundle %s; the kiosk will restart to read it", bundle.version)
        return SyncOutcome("applied", CONFIG_DATASET, bundle.version, records=len(bundle.records))

    def _remember(self, bundle: Bundle, digest: str) -> None:
        name = _name(bundle.dataset)
        record = {
            "payload_sha256": digest,
            "version": bundle.version,
            "issued_at": bundle.issued_at.isoformat(),
            "kind": bundle.kind,
            # What this bundle put in force: a later delivery of the same bytes is a no-op only while it
            # still is.
            "in_force": self._in_force(name),
        }
        self.store.meta.set(APPLIED_META.format(name), json.dumps(record, sort_keys=True))
        # The hub's data is in force here now: no simulation may run on this database any more.
        self.store.meta.set(SOURCE_META, HUB_SOURCE)
        # A bundle refused against the old state may be acceptable against the new one.
        self.store.meta.set(REJECTED_META.format(name), "{}")

    def _same_content(self, bundle: Bundle, stored_sha256: str) -> bool:
        if bundle.dataset is Dataset.POLICY:
            try:
                return canonical_sha256(bundle.records) == stored_sha256
            except ValueError:  # not storable (NaN ...), so certainly not what is stored
                return False
        if not isinstance(bundle.records, list):
            return False
        # Compared as sets: the order rows were applied in (full, or a delta's result) is not content.
        _version, current = self._current(bundle.dataset)
        offered = {canonical(r) for r in bundle.records}
        return len(offered) == len(bundle.records) and offered == current.keys()

    def _current(self, dataset: Dataset) -> tuple[str | None, dict[bytes, Mapping[str, Any]]]:
        """The version in force and its records keyed by canonical JSON, from one snapshot."""
        version, rows = self.store.reference_data.rows(dataset, _ROW_COLUMNS[dataset])
        return version, {canonical(record): record for record in rows}

    def _patched(self, bundle: Bundle) -> list[Mapping[str, Any]]:
        """The base rows with the delta applied; any disagreement with the base: the hub must send full."""
        version, current = self._current(bundle.dataset)
        if version != bundle.base_version:
            raise Rejected("base_mismatch", bundle.version)
        for record in bundle.records["remove"]:
            if current.pop(canonical(record), None) is None:
                raise Rejected("base_mismatch", bundle.version)
        for record in bundle.records["add"]:
            key = canonical(record)
            if key in current:
                raise Rejected("base_mismatch", bundle.version)
            current[key] = record
        return list(current.values())
