"""The policy for chip outcomes: which reasons a chip gives per lane rule, where the face reference
comes from, and the fingerprint rule an ePassport-only lane cannot have."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kiosk.chip.outcome import ChipOutcome
from kiosk.chip.passive import PassiveError
from kiosk.policy import FaceReference, assess_chip, face_reference
from kiosk.reasons import Reason
from kiosk.reference_data import PolicyRules
from kiosk.store.dataset_validation import validate_dataset
from kiosk.store.errors import ReferenceDataError

RULES = {mode: PolicyRules(chip_required=mode) for mode in ("always", "if_present", "never")}
GOOD = ChipOutcome(
    found=True,
    access="PACE",
    read_ok=True,
    active_performed=True,
    active_valid=True,
    dg1_matches=True,
    portrait_available=True,
)
ABSENT = ChipOutcome.absent()
NO_ACCESS = ChipOutcome(found=True)  # e.g. BAC with the wrong MRZ
TAMPERED = ChipOutcome(
    found=True,
    access="BAC",
    read_ok=True,
    passive_errors=(PassiveError.DG_HASH_MISMATCH, PassiveError.UNKNOWN_CSCA),
    dg1_matches=True,
    portrait_available=True,
)
CLONE = ChipOutcome(
    found=True,
    access="BAC",
    read_ok=True,
    active_performed=True,
    active_valid=False,
    dg1_matches=True,
    portrait_available=True,
)
SWAPPED = ChipOutcome(found=True, access="BAC", read_ok=True, dg1_matches=False, portrait_available=True)
NO_AA = ChipOutcome(found=True, access="BAC", read_ok=True, dg1_matches=True, portrait_available=True)
BAD_PORTRAIT = ChipOutcome(found=True, access="PACE", read_ok=True, dg1_matches=True)

NOT_AUTHENTIC = (Reason.CHIP_NOT_AUTHENTIC, Reason.DG_HASH_MISMATCH, Reason.UNKNOWN_CSCA)


@pytest.mark.parametrize(
    ("outcome", "mode", "reasons", "reference"),
    [
        (GOOD, "always", (), FaceReference.CHIP_PORTRAIT),
        (GOOD, "if_present", (), FaceReference.CHIP_PORTRAIT),
        (GOOD, "never", (), FaceReference.ENROLMENT),
        (NO_AA, "always", (), FaceReference.CHIP_PORTRAIT),  # a chip without DG15 has no AA to fail
        (ABSENT, "always", (Reason.CHIP_NOT_FOUND,), FaceReference.NONE),
        (ABSENT, "if_present", (), FaceReference.ENROLMENT),
        (ABSENT, "never", (), FaceReference.ENROLMENT),
        (NO_ACCESS, "always", (Reason.CHIP_UNREADABLE,), FaceReference.NONE),
        (NO_ACCESS, "if_present", (Reason.CHIP_UNREADABLE,), FaceReference.NONE),
        (NO_ACCESS, "never", (), FaceReference.ENROLMENT),
        (TAMPERED, "always", NOT_AUTHENTIC, FaceReference.NONE),
        (TAMPERED, "if_present", NOT_AUTHENTIC, FaceReference.NONE),
        (CLONE, "if_present", (Reason.CHIP_CLONE_SUSPECTED,), FaceReference.NONE),
        (SWAPPED, "always", (Reason.DG1_MRZ_MISMATCH,), FaceReference.NONE),
        # authentic, but DG2 did not decode: nothing else may stand in for it
        (BAD_PORTRAIT, "always", (), FaceReference.NONE),
        (BAD_PORTRAIT, "if_present", (), FaceReference.NONE),
    ],
)
def test_chip_outcomes_per_lane_rule(
    outcome: ChipOutcome, mode: str, reasons: tuple[Reason, ...], reference: FaceReference
) -> None:
    assert assess_chip(outcome, RULES[mode]) == reasons
    assert face_reference(outcome, RULES[mode]) == reference


def test_every_passive_authentication_code_is_a_reason_code() -> None:
    assert {e.value for e in PassiveError} <= {r.value for r in Reason}
    every = ChipOutcome(
        found=True, access="BAC", read_ok=True, passive_errors=tuple(PassiveError), dg1_matches=True
    )
    assert assess_chip(every, RULES["always"]) == (
        Reason.CHIP_NOT_AUTHENTIC,
        *(Reason(e.value) for e in PassiveError),
    )


outcomes = st.builds(
    ChipOutcome,
    found=st.booleans(),
    access=st.sampled_from([None, "PACE", "BAC"]),
    read_ok=st.booleans(),
    passive_errors=st.lists(st.sampled_from(list(PassiveError)), max_size=4).map(tuple),
    active_performed=st.booleans(),
    active_valid=st.booleans(),
    dg1_matches=st.booleans(),
    portrait_available=st.booleans(),
)
modes = st.sampled_from(sorted(RULES))


@given(outcomes, modes)
def test_assess_chip_properties(outcome: ChipOutcome, mode: str) -> None:
    reasons = assess_chip(outcome, RULES[mode])
    assert len(set(reasons)) == len(reasons)
    if mode == "never":
        assert reasons == ()
        return
    # A chip that is there raises no objection exactly when it is authentic.
    if outcome.found:
        assert (reasons == ()) == outcome.authentic
    else:
        assert reasons == ((Reason.CHIP_NOT_FOUND,) if mode == "always" else ())
    # Only an ePassport-only lane objects to a missing chip; otherwise both lanes agree.
    if outcome.found:
        assert reasons == assess_chip(outcome, RULES["if_present" if mode == "always" else "always"])
    # Detail codes come only with CHIP_NOT_AUTHENTIC, and only the ones passive authentication gave.
    details = {r for r in reasons if r.value in {e.value for e in PassiveError}}
    assert details == ({Reason(e.value) for e in outcome.passive_errors} if outcome.readable else set())
    assert (Reason.CHIP_NOT_AUTHENTIC in reasons) == (outcome.readable and bool(outcome.passive_errors))
    assert (Reason.CHIP_UNREADABLE in reasons) == (outcome.found and not outcome.readable)
    if Reason.CHIP_UNREADABLE in reasons:
        assert reasons == (Reason.CHIP_UNREADABLE,)


@given(outcomes, modes)
def test_the_chip_portrait_is_the_reference_only_from_an_authentic_chip(
    outcome: ChipOutcome, mode: str
) -> None:
    reference = face_reference(outcome, RULES[mode])
    if reference is FaceReference.CHIP_PORTRAIT:
        assert outcome.authentic and outcome.portrait_available and mode != "never"
        assert assess_chip(outcome, RULES[mode]) == ()
    if mode != "never" and outcome.found:
        assert reference is not FaceReference.ENROLMENT  # a present chip is never bypassed
    if assess_chip(outcome, RULES[mode]):
        assert reference is not FaceReference.CHIP_PORTRAIT


@pytest.mark.parametrize("fingerprint", ["always", "foreigners", "citizens"])
def test_an_epassport_only_lane_cannot_require_a_fingerprint(fingerprint: str) -> None:
    with pytest.raises(ValidationError, match="Extended Access Control"):
        PolicyRules(chip_required="always", fingerprint_required=fingerprint)
    # as a synced policy: refused with a reason, the previous one stays (the store's contract)
    policy = PolicyRules(fingerprint_required=fingerprint).model_dump(mode="json")
    with pytest.raises(ReferenceDataError, match="Extended Access Control"):
        validate_dataset("policy", "p2", {**policy, "chip_required": "always"})
    # lanes that are not chip-only take fingerprint references from enrolment
    for mode in ("if_present", "never"):
        assert PolicyRules(chip_required=mode, fingerprint_required=fingerprint).chip_required == mode
    assert PolicyRules(chip_required="always").fingerprint_required == "never"
