"""Decision tables for the entitlement policy, over a real SQLite reference store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.documents.mrz import MrzFormat, format_mrz, parse_mrz
from kiosk.policy import BiometricOutcome, Decision, assess_document, decide
from kiosk.reasons import Reason
from kiosk.reference_data import Dataset, PolicyRules
from kiosk.store import canonical_sha256
from tests.conftest import TODAY

GOOD_BIO = BiometricOutcome(face_acquired=True, face_matched=True)


@dataclass(frozen=True)
class Doc:
    nationality: str = "IDN"
    number: str = "B1234567"
    code: str = "P"
    age: int = 30
    expires_in_days: int = 2000
    surname: str = "SUTANTO"
    given: str = "ADI"
    fmt: MrzFormat = MrzFormat.TD3

    def mrz(self):
        birth = date(TODAY.year - self.age, 1, 1)
        lines = format_mrz(
            self.fmt,
            document_code=self.code,
            issuing_state=self.nationality,
            surname=self.surname,
            given_names=self.given,
            document_number=self.number,
            nationality=self.nationality,
            birth_date=birth,
            expiry_date=TODAY + timedelta(days=self.expires_in_days),
            sex="F",
        )
        return parse_mrz(lines, today=TODAY)


def load(store, hasher, rules: PolicyRules | None = None, evisa=(), watch=(), exempt=("MYS", "SGP")):
    datasets = {
        Dataset.POLICY: (rules or PolicyRules()).model_dump(mode="json"),
        Dataset.VISA_EXEMPT: [{"nationality": n, "max_stay_days": 30} for n in exempt],
        Dataset.EVISA: list(evisa),
        Dataset.WATCHLIST: list(watch),
    }
    for name, records in datasets.items():
        store.reference_data.apply(name, canonical_sha256(records)[:16], records)


def evisa_for(hasher, doc: Doc, kind="e-visa", start=-10, end=60, nationality=None):
    return {
        "document_hash": hasher.document(doc.nationality, doc.number),
        "nationality": nationality or doc.nationality,
        "kind": kind,
        "valid_from": (TODAY + timedelta(days=start)).isoformat(),
        "valid_until": (TODAY + timedelta(days=end)).isoformat(),
    }


def assess(store, hasher, doc: Doc, rules: PolicyRules | None = None):
    return assess_document(
        doc.mrz(), TODAY, rules or store.reference_data.policy_rules(), store.reference_data, hasher
    )


def test_citizen_passes(store, hasher):
    load(store, hasher)
    a = assess(store, hasher, Doc())
    assert a.reasons == () and a.entitlement == "citizen" and a.citizen
    assert decide(a, GOOD_BIO, True).decision is Decision.OPEN


def test_visa_exempt_passes(store, hasher):
    load(store, hasher)
    a = assess(store, hasher, Doc(nationality="MYS"))
    assert a.entitlement == "visa_exempt" and a.reasons == ()


@pytest.mark.parametrize(
    ("start", "end", "kind", "nationality", "entitled"),
    [
        (-10, 60, "e-visa", None, True),
        (-10, 60, "e-voa", None, True),
        (0, 0, "e-visa", None, True),  # valid on the day it starts and ends
        (-60, -1, "e-visa", None, False),  # expired yesterday
        (1, 60, "e-visa", None, False),  # not valid yet
        (-10, 60, "e-visa", "GBR", False),  # issued for another nationality
        (-10, 60, "kitas", None, False),  # a kind this gate does not accept
    ],
)
def test_evisa_rules(store, hasher, start, end, kind, nationality, entitled):
    doc = Doc(nationality="AUS")
    load(store, hasher, evisa=[evisa_for(hasher, doc, kind, start, end, nationality)])
    a = assess(store, hasher, doc)
    assert (Reason.NO_ENTITLEMENT not in a.reasons) is entitled
    assert a.entitlement == (kind if entitled else None)


def test_evisa_of_another_document_does_not_count(store, hasher):
    load(store, hasher, evisa=[evisa_for(hasher, Doc(nationality="AUS", number="X9999999"))])
    assert Reason.NO_ENTITLEMENT in assess(store, hasher, Doc(nationality="AUS")).reasons


@pytest.mark.parametrize(
    ("nationality", "expires_in", "reason"),
    [
        ("IDN", -1, Reason.DOCUMENT_EXPIRED),
        ("IDN", 0, None),  # valid through its expiry day
        ("IDN", 30, None),  # citizens need no remaining validity
        ("MYS", 179, Reason.DOCUMENT_VALIDITY_TOO_SHORT),
        ("MYS", 180, None),
        ("MYS", -400, Reason.DOCUMENT_EXPIRED),
    ],
)
def test_document_validity(store, hasher, nationality, expires_in, reason):
    load(store, hasher)
    reasons = assess(store, hasher, Doc(nationality=nationality, expires_in_days=expires_in)).reasons
    expected = {reason} if reason else set()
    assert set(reasons) & {Reason.DOCUMENT_EXPIRED, Reason.DOCUMENT_VALIDITY_TOO_SHORT} == expected


@pytest.mark.parametrize(
    ("age", "min_age", "refer"), [(13, 14, True), (14, 14, False), (17, 18, True), (5, 0, False)]
)
def test_minimum_age_is_configurable(store, hasher, age, min_age, refer):
    rules = PolicyRules(min_age_years=min_age)
    load(store, hasher, rules=rules)
    birthday_passed = Doc(age=age)  # born 1 January: the birthday this year has passed
    assert (Reason.UNDER_MIN_AGE in assess(store, hasher, birthday_passed).reasons) is refer


@pytest.mark.parametrize(
    ("code", "fmt", "allowed", "ok"),
    [
        ("P", MrzFormat.TD3, ("P",), True),
        ("PN", MrzFormat.TD3, ("P",), True),
        ("I", MrzFormat.TD1, ("P",), False),
        ("I", MrzFormat.TD1, ("P", "I"), True),
        ("PD", MrzFormat.TD3, ("PN",), False),
    ],
)
def test_document_types(store, hasher, code, fmt, allowed, ok):
    load(store, hasher, rules=PolicyRules(allowed_document_codes=allowed))
    reasons = assess(store, hasher, Doc(code=code, fmt=fmt)).reasons
    assert (Reason.DOCUMENT_TYPE_NOT_ALLOWED not in reasons) is ok


def test_watchlist_by_person_and_lost_stolen_by_document_are_silent_alerts(store, hasher):
    doc = Doc(nationality="SGP")
    mrz = doc.mrz()
    watch = [
        {
            "record_id": "case-17",
            "subject_hash": hasher.person(mrz.nationality, mrz.surname, mrz.given_names, mrz.birth_date),
            "match_on": "person",
            "category": "watchlist",
        },
        {
            "record_id": "lost-4",
            "subject_hash": hasher.document("SGP", doc.number),
            "match_on": "document",
            "category": "lost_stolen",
        },
    ]
    load(store, hasher, watch=watch)
    a = assess(store, hasher, doc)
    assert set(a.silent_alerts) == {Reason.WATCHLIST_HIT, Reason.DOCUMENT_LOST_STOLEN}
    assert decide(a, GOOD_BIO, True).decision is Decision.REFER


def test_invalid_mrz_is_referred(store, hasher):
    load(store, hasher)
    lines = list(Doc().mrz().lines)
    lines[1] = lines[1][:9] + str((int(lines[1][9]) + 1) % 10) + lines[1][10:]
    mrz = parse_mrz(lines, today=TODAY)
    assert not mrz.valid
    a = assess_document(mrz, TODAY, store.reference_data.policy_rules(), store.reference_data, hasher)
    assert Reason.DOCUMENT_CHECK_FAILED in a.reasons


@pytest.mark.parametrize(
    ("bio", "reason"),
    [
        (BiometricOutcome(face_acquired=True, face_matched=True), None),
        (BiometricOutcome(face_acquired=True, face_matched=False), Reason.FACE_MISMATCH),
        (BiometricOutcome(face_acquired=False), Reason.FACE_NOT_ACQUIRED),
        (BiometricOutcome(portrait_available=False), Reason.NO_REFERENCE_PORTRAIT),
    ],
)
def test_face_results(store, hasher, bio, reason):
    load(store, hasher)
    verdict = decide(assess(store, hasher, Doc()), bio, True)
    assert verdict.reasons == ((reason,) if reason else ())


def test_face_not_required_ignores_face(store, hasher):
    rules = PolicyRules(face_match_required=False)
    load(store, hasher, rules=rules)
    assert decide(assess(store, hasher, Doc()), BiometricOutcome(), True).decision is Decision.OPEN


@pytest.mark.parametrize(
    ("mode", "nationality", "required"),
    [
        ("never", "IDN", False),
        ("never", "MYS", False),
        ("always", "IDN", True),
        ("always", "MYS", True),
        ("citizens", "IDN", True),
        ("citizens", "MYS", False),
        ("foreigners", "IDN", False),
        ("foreigners", "MYS", True),
    ],
)
def test_fingerprint_requirement(store, hasher, mode, nationality, required):
    load(store, hasher, rules=PolicyRules(fingerprint_required=mode))
    a = assess(store, hasher, Doc(nationality=nationality))
    assert a.fingerprint_required is required
    verdict = decide(a, GOOD_BIO, True)
    assert (Reason.FINGERPRINT_NOT_ACQUIRED in verdict.reasons) is required
    good = BiometricOutcome(True, True, True, True, True)
    assert decide(a, good, True).decision is Decision.OPEN
    bad = BiometricOutcome(True, True, True, True, False)
    assert (decide(a, bad, True).decision is Decision.REFER) is required


def test_unhealthy_gate_refers(store, hasher):
    load(store, hasher)
    assert decide(assess(store, hasher, Doc()), GOOD_BIO, False).reasons == (Reason.GATE_UNHEALTHY,)


DEFECTS = {
    "expired": Reason.DOCUMENT_EXPIRED,
    "minor": Reason.UNDER_MIN_AGE,
    "no_visa": Reason.NO_ENTITLEMENT,
    "watchlist": Reason.WATCHLIST_HIT,
    "lost_stolen": Reason.DOCUMENT_LOST_STOLEN,
    "wrong_type": Reason.DOCUMENT_TYPE_NOT_ALLOWED,
    "face_mismatch": Reason.FACE_MISMATCH,
    "gate_down": Reason.GATE_UNHEALTHY,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.sampled_from(sorted(DEFECTS))))
def test_every_combination_of_defects_yields_exactly_its_reasons(store, hasher, defects):
    doc = Doc(
        nationality="AUS" if "no_visa" in defects else "MYS",
        expires_in_days=-5 if "expired" in defects else 1000,
        age=10 if "minor" in defects else 40,
        code="V" if "wrong_type" in defects else "P",
        fmt=MrzFormat.MRVA if "wrong_type" in defects else MrzFormat.TD3,
    )
    mrz = doc.mrz()
    watch = []
    if "watchlist" in defects:
        subject = hasher.person(mrz.nationality, mrz.surname, mrz.given_names, mrz.birth_date)
        watch.append(
            {"record_id": "w1", "subject_hash": subject, "match_on": "person", "category": "watchlist"}
        )
    if "lost_stolen" in defects:
        subject = hasher.document(mrz.issuing_state, mrz.document_number)
        watch.append(
            {"record_id": "l1", "subject_hash": subject, "match_on": "document", "category": "lost_stolen"}
        )
    load(store, hasher, watch=watch)
    bio = BiometricOutcome(face_acquired=True, face_matched="face_mismatch" not in defects)
    verdict = decide(assess(store, hasher, doc), bio, "gate_down" not in defects)
    assert set(verdict.reasons) == {DEFECTS[d] for d in defects}
    assert verdict.decision is (Decision.REFER if defects else Decision.OPEN)


def test_ocr_repaired_document_number_is_referred_not_trusted(store, hasher):
    load(store, hasher)
    lines = list(Doc(number="L898902C3").mrz().lines)
    lines[1] = lines[1][:5] + "O" + lines[1][6:]  # the 0 misread as O; only one repair agrees
    mrz = parse_mrz(lines, today=TODAY)
    assert not mrz.valid and mrz.repaired_document_number == "L898902C3"
    a = assess_document(mrz, TODAY, store.reference_data.policy_rules(), store.reference_data, hasher)
    assert a.reasons == (Reason.DOCUMENT_NUMBER_UNCONFIRMED,)
