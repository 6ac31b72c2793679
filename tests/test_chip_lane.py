"""The passport chip in the lane: the engine's chip_read stage on the in-process chip slot (the real
access control, secure messaging, passive and active authentication code), each chip outcome to its
decision, the DG2 portrait as the face reference, and a whole-gate run whose travellers carry chips
with nothing read from a chip left on disk."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config import Config, FlowSection
from drivers.chip.card import SimulatedPassport
from drivers.chip.lds import face
from drivers.interfaces import HealthState
from kiosk.app import Kiosk, build_kiosk
from kiosk.flow.engine import ChipStep, FlowEvent
from kiosk.flow.states import State
from kiosk.headless import run_population
from kiosk.reference_data import Dataset, PolicyRules
from kiosk.simulation.passports import PassportOffice
from kiosk.simulation.population import LANE_POLICY, population, reference_datasets, traveller_of
from kiosk.store import canonical_sha256

WAIT_S = 30.0


def seed_reference(kiosk: Kiosk, travellers, rules: PolicyRules = LANE_POLICY) -> None:
    today = kiosk.clock.now().date()
    for name, records in reference_datasets(travellers, kiosk.hasher, today, rules).items():
        kiosk.store.reference_data.apply(name, canonical_sha256(records)[:16], records)


def serve(kiosk: Kiosk, traveller):
    kiosk.lane.arrive(traveller)
    try:
        return kiosk.engine.run_once(1.0)
    finally:
        kiosk.lane.leave()


def arrive_and_serve(kiosk: Kiosk, archetype: str, rules: PolicyRules = LANE_POLICY, seed: int = 7):
    traveller = traveller_of(archetype, seed=seed, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller], rules)
    return serve(kiosk, traveller)


@pytest.mark.parametrize(
    ("archetype", "reasons"),
    [
        ("citizen", ()),
        # An unauthentic chip's portrait is nobody's: there is no face reference either.
        ("chip_clone", ("CHIP_CLONE_SUSPECTED", "NO_REFERENCE_PORTRAIT")),
        ("chip_tampered", ("CHIP_NOT_AUTHENTIC", "DG_HASH_MISMATCH", "NO_REFERENCE_PORTRAIT")),
        ("chip_missing", ("CHIP_NOT_FOUND", "NO_REFERENCE_PORTRAIT")),
        ("dg1_mismatch", ("DG1_MRZ_MISMATCH", "NO_REFERENCE_PORTRAIT")),
        ("impostor", ("FACE_MISMATCH",)),
    ],
)
def test_each_chip_outcome_reaches_its_decision(kiosk: Kiosk, archetype: str, reasons: tuple[str, ...]):
    outcome = arrive_and_serve(kiosk, archetype)
    assert outcome.reasons == reasons
    assert outcome.decision == ("OPEN" if not reasons else "REFER")
    assert outcome.path[:3] == ("document_read", "document_checks", "chip_read")
    assert "chip_read" in outcome.stage_ms
    assert kiosk.engine.state is State.IDLE


def test_the_chip_stage_guides_the_traveller_and_never_shows_chip_content(kiosk: Kiosk):
    events: list[FlowEvent] = []
    kiosk.engine.subscribe(events.append)
    assert arrive_and_serve(kiosk, "citizen").decision == "OPEN"
    chip = [e for e in events if e.state is State.CHIP_READ and e.kind == "guidance"]
    assert [e.data["codes"][0] for e in chip] == [ChipStep.KEEP_ON_READER, ChipStep.READING, ChipStep.DONE]
    # The screen is told the stage, and a progress figure only once it is true (the chip is read).
    assert [e.data.get("progress") for e in chip] == [None, None, 1.0]
    assert all(e.data["stage"] == "chip_read" for e in chip)
    assert all(set(e.data) <= {"stage", "codes", "progress"} for e in chip)


def test_the_face_is_compared_with_the_chip_portrait_not_the_enrolment(kiosk: Kiosk):
    traveller = traveller_of("citizen", seed=11, today=kiosk.clock.now().date())
    # A chip whose portrait shows someone else, in the passport of a traveller the simulated enrolment
    # knows by their own face: the chip decides whom the gate compares with.
    office = PassportOffice()
    other = dataclasses.replace(traveller, portrait_face_id="face-someone-else")
    kiosk.lane.passport_of = lambda _t: office.issue(other)
    seed_reference(kiosk, [traveller])
    assert serve(kiosk, traveller).reasons == ("FACE_MISMATCH",)
    # A lane that does not use chips takes the enrolment's portrait, and skips the chip stage.
    seed_reference(kiosk, [traveller], PolicyRules(chip_required="never"))
    outcome = serve(kiosk, traveller)
    assert outcome.decision == "OPEN" and "chip_read" not in outcome.path


def test_a_passport_without_chip_passes_a_lane_where_the_chip_is_optional(kiosk: Kiosk):
    outcome = arrive_and_serve(kiosk, "chip_missing", PolicyRules(chip_required="if_present"))
    assert outcome.decision == "OPEN"
    # The lane looked for the chip for chip_presence_s (simulated time) before calling it absent.
    assert outcome.stage_ms["chip_read"] >= kiosk.config.flow.chip_presence_s * 1000


def test_a_chip_that_is_not_this_documents_is_unreadable(kiosk: Kiosk):
    today = kiosk.clock.now().date()
    traveller, stranger = (traveller_of("citizen", seed=s, today=today) for s in (21, 22))
    card = PassportOffice().issue(stranger)
    kiosk.lane.passport_of = lambda _t: card
    seed_reference(kiosk, [traveller])
    assert serve(kiosk, traveller).reasons == ("CHIP_UNREADABLE", "NO_REFERENCE_PORTRAIT")


def test_a_passport_lifted_mid_read_and_not_put_back_is_unreadable(kiosk: Kiosk):
    traveller = traveller_of("citizen", seed=23, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    kiosk.lane.arrive(traveller)
    try:
        kiosk.lane.chip_slot.remove_after = 12  # gone after the access control, during the files
        events: list[FlowEvent] = []
        kiosk.engine.subscribe(events.append)
        outcome = kiosk.engine.run_once(1.0)
    finally:
        kiosk.lane.leave()
    assert outcome.reasons == ("CHIP_UNREADABLE", "NO_REFERENCE_PORTRAIT")
    codes = [e.data["codes"][0] for e in events if e.kind == "guidance" and e.state is State.CHIP_READ]
    assert ChipStep.PUT_BACK in codes
    # It waited for the passport to come back for the rest of chip_timeout_s.
    assert outcome.stage_ms["chip_read"] >= (kiosk.config.flow.chip_timeout_s - 1) * 1000


def test_an_unknown_csca_refers_until_the_trust_dataset_brings_it(kiosk: Kiosk):
    traveller = traveller_of("visa_exempt", seed=3, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    trust = reference_datasets([traveller], kiosk.hasher, kiosk.clock.now().date())[Dataset.CHIP_TRUST]
    kiosk.store.reference_data.apply(Dataset.CHIP_TRUST, "empty", [])
    refused = serve(kiosk, traveller)
    assert refused.reasons[:2] == ("CHIP_NOT_AUTHENTIC", "UNKNOWN_CSCA")
    # The engine builds its trust store again as soon as the dataset version changes.
    kiosk.store.reference_data.apply(Dataset.CHIP_TRUST, "with-csca", trust)
    assert serve(kiosk, traveller).decision == "OPEN"


def test_a_failed_chip_reader_takes_the_lane_out_of_service_until_repaired(kiosk: Kiosk):
    traveller = traveller_of("citizen", seed=5, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    chip = kiosk.engine.devices.chip
    chip.fail("reader unplugged")
    outcome = serve(kiosk, traveller)
    assert (
        outcome.decision == "OUT_OF_SERVICE"
        and kiosk.engine.out_of_service_reason == "chip: reader unplugged"
    )
    assert kiosk.engine.device_health()["chip"].state is HealthState.FAILED
    chip.repair()
    assert serve(kiosk, traveller).decision == "OPEN"


def test_a_reader_lost_during_the_read_fails_safe(kiosk: Kiosk):
    traveller = traveller_of("citizen", seed=6, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    chip = kiosk.engine.devices.chip
    kiosk.engine.subscribe(
        lambda e: chip.fail("reader unplugged") if e.kind == "state" and e.state is State.CHIP_READ else None
    )
    outcome = serve(kiosk, traveller)
    assert outcome.decision == "REFER" and outcome.reasons == ("DEVICE_FAILURE",)
    assert kiosk.engine.state is State.OUT_OF_SERVICE
    assert not kiosk.engine.devices.gate.entry_unlocked()


class SlowPassport(SimulatedPassport):
    """A chip that answers only once ``answer`` is set (a passport at the edge of the reader's field)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.answer = threading.Event()

    def process(self, apdu: bytes) -> bytes:
        self.answer.wait(WAIT_S)
        return super().process(apdu)


def slow_chip(traveller) -> SlowPassport:
    card = PassportOffice().issue(traveller)
    assert card is not None
    return SlowPassport(card.contents, aa_key=card.aa_key)


def test_a_slow_chip_runs_into_the_chip_timeout(tmp_path: Path):
    kiosk = build_kiosk(Config(base_dir=tmp_path, flow=FlowSection(chip_timeout_s=0.5)))
    try:
        kiosk.engine.start()
        traveller = traveller_of("citizen", seed=8, today=kiosk.clock.now().date())
        seed_reference(kiosk, [traveller])
        card = slow_chip(traveller)
        kiosk.lane.passport_of = lambda _t: card
        outcome = serve(kiosk, traveller)
        card.answer.set()
        assert outcome.reasons == ("CHIP_UNREADABLE", "NO_REFERENCE_PORTRAIT")
    finally:
        kiosk.close()


def test_cancel_is_honoured_while_the_chip_is_being_read(kiosk: Kiosk):
    traveller = traveller_of("citizen", seed=9, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    card = slow_chip(traveller)
    kiosk.lane.passport_of = lambda _t: card
    kiosk.engine.subscribe(
        lambda e: (
            kiosk.engine.cancel()
            if e.data.get("codes") == [ChipStep.READING] and not card.answer.is_set()
            else None
        )
    )
    try:
        outcome = serve(kiosk, traveller)
        # Decided while the chip has not answered a single command yet.
        assert not card.answer.is_set() and card.commands == 0
    finally:
        card.answer.set()
    assert outcome.decision == "ABANDONED" and outcome.reasons == ("CANCELLED",)
    # The abandoned read ends on its own; the next traveller is served normally.
    kiosk.lane.passport_of = PassportOffice().passport_of
    assert arrive_and_serve(kiosk, "citizen", seed=10).decision == "OPEN"


# --- the whole gate -----------------------------------------------------------------------------

SEED, TRAVELLERS = 26, 60  # every chip archetype is in this population


def test_whole_gate_run_every_traveller_carries_a_chip_and_nothing_of_it_is_kept(tmp_path: Path):
    db = tmp_path / "var" / "lane.sqlite3"
    db.parent.mkdir()
    summary = run_population(Config(base_dir=tmp_path), TRAVELLERS, SEED, db)
    assert summary["unexpected_decisions"] == 0, summary
    assert summary["gate_left_open"] == 0 and summary["interlock_violations"] == 0
    assert "chip_read" in summary["stage_ms"]
    reasons = summary["reasons"]
    for code in ("CHIP_CLONE_SUSPECTED", "CHIP_NOT_AUTHENTIC", "CHIP_NOT_FOUND", "DG1_MRZ_MISMATCH"):
        assert reasons.get(code), (code, reasons)

    travellers = population(SEED, TRAVELLERS, datetime.now(UTC).date())
    with sqlite3.connect(db) as connection:
        stages = [json.loads(p) for (p,) in connection.execute("SELECT stage_ms FROM transactions")]
        everything = _every_value(connection)
    # Every traveller whose document could be read went through the chip stage.
    readable = [t for t in travellers if t.archetype != "damaged_mrz"]
    assert sum("chip_read" in s for s in stages) == len(readable)

    office = PassportOffice()
    secrets: list[bytes] = []
    for traveller in travellers:
        secrets += [traveller.document_number.encode(), *(line.encode() for line in traveller.mrz_lines)]
        secrets.append(f"{traveller.surname}<<{traveller.given_names}".encode())
        card = office.issue(traveller)
        if card is not None:
            image = face.parse_dg2(card.contents["DG2"])[0].data
            secrets.append(image[len(image) // 2 : len(image) // 2 + 48])
    leaks = [s for s in secrets for value in everything if s in value]
    assert leaks == []
    # Nor anywhere else on disk: the database (and its WAL), keys and whatever else the kiosk wrote.
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        content = path.read_bytes()
        assert not [s for s in secrets if s in content], path


def _every_value(connection: sqlite3.Connection) -> list[bytes]:
    values: list[bytes] = []
    tables = [t for (t,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert {"transactions", "outbox"} <= set(tables)
    for table in tables:
        for row in connection.execute(f'SELECT * FROM "{table}"'):
            for value in row:
                if isinstance(value, bytes):
                    values.append(value)
                elif value is not None:
                    values.append(str(value).encode())
    return values


@pytest.mark.needs_lfw
def test_with_real_faces_the_chip_carries_the_travellers_photo(tmp_path: Path):
    from kiosk.headless import simulated_kiosk
    from kiosk.simulation.population import FaceImages
    from tests.lfw import lfw_dir
    from tests.test_kiosk_face import SEED as FACE_SEED
    from tests.test_kiosk_face import face_config

    with simulated_kiosk(face_config(tmp_path), 0, FACE_SEED, None) as (kiosk, stage, _):
        traveller = traveller_of("citizen", FACE_SEED, kiosk.clock.now().date())
        card = kiosk.lane.passport_of(traveller)
        assert card is not None
        portrait = face.parse_dg2(card.contents["DG2"])[0]
        expected = FaceImages(lfw_dir(), FACE_SEED).portrait_image(traveller)
        assert (face.decode_image(portrait.data) == expected).all()
        stage.arrive(traveller)
        try:
            outcome = kiosk.engine.run_once(1.0)
        finally:
            stage.leave()
        # The ONNX matcher compared the live LFW photo with the one on the chip.
        assert outcome is not None and outcome.decision == "OPEN" and "chip_read" in outcome.path
        assert kiosk.store.transactions.get(outcome.transaction_id)["face_score"] is not None
