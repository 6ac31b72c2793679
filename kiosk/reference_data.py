"""Reference data the entitlement policy decides on: what it is and how it is looked up.

The data itself arrives as versioned datasets (synced from the hub, or seeded by the simulator);
``kiosk.store`` keeps it. Rules live here as data, never as code paths per country.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Dataset(StrEnum):
    EVISA = "evisa"
    VISA_EXEMPT = "visa_exempt"
    WATCHLIST = "watchlist"
    POLICY = "policy"
    CHIP_TRUST = "chip_trust"  # CSCA certificates, master lists and CRLs: kiosk.chip.trust_dataset


# Meta key naming who last filled the reference data: the edge agent writes HUB_SOURCE whenever a signed
# hub bundle is in force, and a simulation then refuses the database (kiosk.simulation.seeding).
SOURCE_META = "reference_data_source"
HUB_SOURCE = "hub"

# The policy schema versions this build understands; a dataset of another version is refused.
SUPPORTED_POLICY_SCHEMAS = frozenset({1})


class PolicyRules(BaseModel):
    """Entitlement rules, distributed as the ``policy`` dataset (so set per site or lane by the hub)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    citizen_nationality: str = Field("IDN", min_length=3, max_length=3)
    # ICAO document codes accepted at this gate: first letter (P = passport) or full two-letter code.
    allowed_document_codes: tuple[str, ...] = ("P",)
    min_age_years: int = Field(14, ge=0, le=120)
    # Foreign passports must stay valid this long after entry (Indonesia asks six months).
    min_remaining_validity_days_foreign: int = Field(180, ge=0)
    min_remaining_validity_days_citizen: int = Field(0, ge=0)
    face_match_required: bool = True
    fingerprint_required: Literal["never", "always", "foreigners", "citizens"] = "never"
    # Which foreign entitlements admit a traveller through the e-gate at all.
    accepted_entitlements: tuple[str, ...] = ("visa_exempt", "e-visa", "e-voa")
    # The ePassport chip (kiosk.policy.assess_chip): "always" is an ePassport-only lane (no chip
    # refers); "if_present" checks a chip when the document has one; "never" does not use the chip.
    # Whenever a chip is used, an unreadable, unauthentic or cloned chip, or a DG1 that is not the
    # printed MRZ, refers the traveller.
    chip_required: Literal["always", "if_present", "never"] = "if_present"

    @model_validator(mode="after")
    def _fingerprint_reference_exists(self) -> PolicyRules:
        """Refuse a policy that requires a fingerprint no reference exists for.

        In an ePassport-only lane (``chip_required = "always"``) the chip is where the traveller's
        biometric references come from. Its fingerprints (DG3) are readable only after Extended Access
        Control, which needs terminal certificates issued through each state's CVCA/SPOC; this build
        has no EAC, so no fingerprint reference exists there and such a lane could only refer every
        traveller it asked for a finger. Refusing the policy when it is validated (the hub gets a
        ``sync_rejected`` alert, the lane keeps its previous policy) says so once, where the mistake
        was made, instead of at every gate passage. Lanes that are not chip-only take references from
        the enrolment provider; a traveller without an enrolled finger there is referred with
        NO_REFERENCE_FINGERPRINT.
        """
        if self.chip_required == "always" and self.fingerprint_required != "never":
            raise ValueError(
                f"fingerprint_required {self.fingerprint_required!r} with chip_required 'always': the chip's "
                "fingerprints (DG3) need Extended Access Control, which this kiosk does not do, so no "
                "fingerprint reference exists; set fingerprint_required to 'never'"
            )
        return self


@dataclass(frozen=True)
class EVisaRecord:
    document_hash: str
    nationality: str
    kind: str  # e-visa, e-voa, kitas ...
    valid_from: date
    valid_until: date


@dataclass(frozen=True)
class WatchlistEntry:
    record_id: str | None  # the hub's id of the record; None if applied before ids existed
    subject_hash: str
    match_on: Literal["document", "person"]
    category: Literal["watchlist", "lost_stolen"]


class ReferenceDataLookup(Protocol):
    """Read side of the reference data, as the policy sees it."""

    def policy_rules(self) -> PolicyRules | None: ...

    def evisa_records(self, document_hash: str) -> list[EVisaRecord]: ...

    def visa_exempt_max_stay(self, nationality: str) -> int | None:
        """Days of visa-free stay for ``nationality``, or ``None`` when it is not exempt."""
        ...

    def watchlist_hits(self, document_hash: str, person_hash: str) -> list[WatchlistEntry]: ...

    def dataset_versions(self) -> dict[str, str]: ...
