"""Entitlement policy: may this traveller pass the e-gate, or must an officer see them?

Two steps, because the engine checks the document before it spends time on biometrics:
:func:`assess_document` looks at the document and the reference data, :func:`decide` adds the
biometric results and the lane's health. Every rule contributes reason codes; the decision is
OPEN only when none applies. The rules' parameters come from the versioned ``policy`` dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from kiosk.chip.outcome import ChipOutcome
from kiosk.documents.mrz import Mrz
from kiosk.privacy import IdentifierHasher
from kiosk.reasons import SILENT_ALERT_REASONS, Reason
from kiosk.reference_data import PolicyRules, ReferenceDataLookup, WatchlistEntry


class Decision(StrEnum):
    OPEN = "OPEN"
    REFER = "REFER"


@dataclass(frozen=True)
class DocumentAssessment:
    reasons: tuple[Reason, ...]
    entitlement: str | None  # citizen, visa_exempt, e-visa, e-voa ... or None
    citizen: bool
    fingerprint_required: bool
    face_match_required: bool
    document_hash: str  # fleet-key hash: for matching on this device, never for an event
    watchlist_hits: tuple[WatchlistEntry, ...] = ()

    @property
    def silent_alerts(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r in SILENT_ALERT_REASONS)

    def hit_records(self, reason: Reason) -> list[str | None]:
        """The hub's ids of the watchlist records behind a silent-alert ``reason``."""
        category = _SILENT_ALERT_CATEGORY[reason]
        return [hit.record_id for hit in self.watchlist_hits if hit.category == category]


_SILENT_ALERT_CATEGORY = {Reason.WATCHLIST_HIT: "watchlist", Reason.DOCUMENT_LOST_STOLEN: "lost_stolen"}


def probable_document_number(mrz: Mrz) -> str:
    """The number as read, or its OCR repair when only that passes the check digit: the most probable
    one, so that a watchlisted document read with one wrong character still raises its alert."""
    return mrz.repaired_document_number or mrz.document_number


@dataclass(frozen=True)
class BiometricOutcome:
    """What the lane measured; ``None`` fields mean the step was not run."""

    face_acquired: bool | None = None
    face_matched: bool | None = None
    portrait_available: bool = True
    fingerprint_acquired: bool | None = None
    fingerprint_matched: bool | None = None
    enrolled_finger_available: bool = True


@dataclass(frozen=True)
class PolicyDecision:
    decision: Decision
    reasons: tuple[Reason, ...] = field(default_factory=tuple)


def age_on(birth: date, today: date) -> int:
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years


def _document_type_allowed(code: str, allowed: tuple[str, ...]) -> bool:
    code = code.rstrip("<")
    return code in allowed or (code[:1] in allowed)


def assess_document(
    mrz: Mrz,
    today: date,
    rules: PolicyRules,
    reference_data: ReferenceDataLookup,
    hasher: IdentifierHasher,
) -> DocumentAssessment:
    reasons: list[Reason] = []
    # An OCR repair of the document number is only probable (one check digit cannot prove it),
    # and the number keys every watchlist and e-visa lookup: such a document is referred.
    if mrz.valid_if_repaired:
        reasons.append(Reason.DOCUMENT_NUMBER_UNCONFIRMED)
    elif not mrz.valid:
        reasons.append(Reason.DOCUMENT_CHECK_FAILED)
    if not _document_type_allowed(mrz.document_code, rules.allowed_document_codes):
        reasons.append(Reason.DOCUMENT_TYPE_NOT_ALLOWED)

    citizen = mrz.nationality == rules.citizen_nationality
    if mrz.expiry_date is not None:
        min_days = (
            rules.min_remaining_validity_days_citizen
            if citizen
            else rules.min_remaining_validity_days_foreign
        )
        if mrz.expiry_date < today:
            reasons.append(Reason.DOCUMENT_EXPIRED)
        elif mrz.expiry_date < today + timedelta(days=min_days):
            reasons.append(Reason.DOCUMENT_VALIDITY_TOO_SHORT)
    if mrz.birth_date is not None and age_on(mrz.birth_date, today) < rules.min_age_years:
        reasons.append(Reason.UNDER_MIN_AGE)

    document_hash = hasher.document(mrz.issuing_state, probable_document_number(mrz))
    entitlement = (
        "citizen" if citizen else _foreign_entitlement(mrz, today, rules, reference_data, document_hash)
    )
    if entitlement is None:
        reasons.append(Reason.NO_ENTITLEMENT)

    person_hash = hasher.person(mrz.nationality, mrz.surname, mrz.given_names, mrz.birth_date)
    hits = reference_data.watchlist_hits(document_hash, person_hash)
    categories = {hit.category for hit in hits}
    if "lost_stolen" in categories:
        reasons.append(Reason.DOCUMENT_LOST_STOLEN)
    if "watchlist" in categories:
        reasons.append(Reason.WATCHLIST_HIT)

    fingerprint = {"never": False, "always": True, "citizens": citizen, "foreigners": not citizen}[
        rules.fingerprint_required
    ]
    return DocumentAssessment(
        reasons=tuple(reasons),
        entitlement=entitlement,
        citizen=citizen,
        fingerprint_required=fingerprint,
        face_match_required=rules.face_match_required,
        document_hash=document_hash,
        watchlist_hits=tuple(hits),
    )


def _foreign_entitlement(
    mrz: Mrz, today: date, rules: PolicyRules, reference_data: ReferenceDataLookup, document_hash: str
) -> str | None:
    accepted = set(rules.accepted_entitlements)
    if "visa_exempt" in accepted and reference_data.visa_exempt_max_stay(mrz.nationality) is not None:
        return "visa_exempt"
    for record in reference_data.evisa_records(document_hash):
        if (
            record.kind in accepted
            and record.nationality == mrz.nationality
            and record.valid_from <= today <= record.valid_until
        ):
            return record.kind
    return None


def assess_chip(outcome: ChipOutcome, rules: PolicyRules) -> tuple[Reason, ...]:
    """The chip's reasons to refer (none: the chip raises no objection), by ``rules.chip_required``.

    A chip that is there but fails is suspicious in every lane that uses the chip: only its absence
    depends on the lane. A failed passive authentication gives CHIP_NOT_AUTHENTIC followed by each of
    its own codes (UNKNOWN_CSCA, DG_HASH_MISMATCH ...), so an operator sees exactly what failed.
    """
    if rules.chip_required == "never":
        return ()
    if not outcome.found:
        return (Reason.CHIP_NOT_FOUND,) if rules.chip_required == "always" else ()
    if not outcome.readable:
        return (Reason.CHIP_UNREADABLE,)
    reasons: list[Reason] = []
    if not outcome.dg1_matches:
        reasons.append(Reason.DG1_MRZ_MISMATCH)
    if not outcome.passive_valid:
        reasons.append(Reason.CHIP_NOT_AUTHENTIC)
        reasons.extend(dict.fromkeys(Reason(error.value) for error in outcome.passive_errors))
    if outcome.active_performed and not outcome.active_valid:
        reasons.append(Reason.CHIP_CLONE_SUSPECTED)
    return tuple(reasons)


class FaceReference(StrEnum):
    CHIP_PORTRAIT = "chip_portrait"  # DG2 of the authentic chip just read
    ENROLMENT = "enrolment"  # the lane's EnrolmentProvider (simulated population, enrolment records)
    NONE = "none"  # nothing to compare the face with: NO_REFERENCE_PORTRAIT when a match is required


def face_reference(outcome: ChipOutcome, rules: PolicyRules) -> FaceReference:
    """Where the live face's reference comes from. Once the lane uses a chip that is present, only its
    DG2 counts, and only when the chip is authentic: an unauthenticated portrait may be anyone's, and
    falling back to another source would let a swapped chip choose who the gate compares with."""
    if rules.chip_required == "never":
        return FaceReference.ENROLMENT
    if not outcome.found:
        return FaceReference.ENROLMENT if rules.chip_required == "if_present" else FaceReference.NONE
    if outcome.authentic and outcome.portrait_available:
        return FaceReference.CHIP_PORTRAIT
    return FaceReference.NONE


def decide(
    assessment: DocumentAssessment, biometrics: BiometricOutcome, gate_healthy: bool
) -> PolicyDecision:
    reasons = list(assessment.reasons)
    if assessment.face_match_required:
        if not biometrics.portrait_available:
            reasons.append(Reason.NO_REFERENCE_PORTRAIT)
        elif not biometrics.face_acquired:
            reasons.append(Reason.FACE_NOT_ACQUIRED)
        elif not biometrics.face_matched:
            reasons.append(Reason.FACE_MISMATCH)
    if assessment.fingerprint_required:
        if not biometrics.enrolled_finger_available:
            reasons.append(Reason.NO_REFERENCE_FINGERPRINT)
        elif not biometrics.fingerprint_acquired:
            reasons.append(Reason.FINGERPRINT_NOT_ACQUIRED)
        elif not biometrics.fingerprint_matched:
            reasons.append(Reason.FINGERPRINT_MISMATCH)
    if not gate_healthy:
        reasons.append(Reason.GATE_UNHEALTHY)
    return PolicyDecision(Decision.REFER if reasons else Decision.OPEN, tuple(reasons))
