"""The transaction engine end to end on in-process simulated devices and a real SQLite store."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest

from drivers.interfaces import LaneEvent
from kiosk.flow.engine import FlowEvent
from kiosk.flow.states import State
from kiosk.headless import run_population
from kiosk.simulation.population import ARCHETYPES, population, reference_datasets, traveller_of
from kiosk.store import canonical_sha256

ARCHETYPE_EXPECTED = {a.name: a.expected for a in ARCHETYPES}


def seed_reference(kiosk, travellers):
    today = kiosk.clock.now().date()
    for name, records in reference_datasets(travellers, kiosk.hasher, today).items():
        kiosk.store.reference_data.apply(name, canonical_sha256(records)[:16], records)


def serve(kiosk, traveller):
    kiosk.lane.arrive(traveller)
    try:
        return kiosk.engine.run_once(1.0)
    finally:
        kiosk.lane.leave()


@pytest.mark.parametrize("archetype", sorted(ARCHETYPE_EXPECTED))
def test_each_archetype_reaches_its_decision_and_leaves_the_lane_safe(kiosk, archetype):
    traveller = traveller_of(archetype, seed=7, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    events: list[FlowEvent] = []
    kiosk.engine.subscribe(events.append)
    outcome = serve(kiosk, traveller)
    assert outcome.decision == ARCHETYPE_EXPECTED[archetype]
    gate = kiosk.engine.devices.gate
    assert not gate.entry_unlocked()
    assert gate.interlock_violations == 0
    assert kiosk.engine.state is State.IDLE
    row = kiosk.store.transactions.get(outcome.transaction_id)
    assert row["decision"] == outcome.decision and row["status"] == "finished"
    states = [e.state for e in events if e.kind == "state"]
    assert states[0] is State.DOCUMENT_READ and states[-1] is State.IDLE
    # Screens never learn why a traveller was referred.
    assert all("reason" not in json.dumps(dict(e.data)).lower() for e in events)


def test_open_path_visits_every_stage_in_order(kiosk):
    traveller = traveller_of("citizen", seed=3, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    outcome = serve(kiosk, traveller)
    assert outcome.path == (
        "document_read",
        "document_checks",
        "chip_read",
        "face_capture",
        "face_match",
        "decision",
        "entry_open",
        "passage",
        "exit_open",
        "done",
    )
    assert set(outcome.stage_ms) == set(outcome.path) - {"done"}


def test_watchlist_hit_raises_silent_alert_and_travels_the_normal_path(kiosk):
    traveller = traveller_of("watchlisted", seed=1, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    outcome = serve(kiosk, traveller)
    assert outcome.decision == "REFER" and "WATCHLIST_HIT" in outcome.reasons
    # Same screens as anyone else up to the decision: the face is still captured.
    assert "face_capture" in outcome.path
    alerts = [e for e in kiosk.store.outbox.pending(100) if e.type == "alert"]
    assert any(json.loads(e.payload)["alert"] == "referral_watchlist_hit" for e in alerts)


def test_tailgating_sends_people_back_and_alerts(kiosk):
    traveller = traveller_of("tailgating", seed=1, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    outcome = serve(kiosk, traveller)
    assert outcome.decision == "REFER" and outcome.reasons == ("TAILGATING",)
    alerts = [json.loads(e.payload) for e in kiosk.store.outbox.pending(100) if e.type == "alert"]
    assert [a["alert"] for a in alerts] == ["tailgating"]
    assert alerts[0]["transaction_id"] == outcome.transaction_id
    assert not kiosk.engine.devices.gate.exit_unlocked()
    assert not kiosk.engine.devices.gate.lane_occupied()


def test_device_failure_mid_transaction_fails_safe_and_goes_out_of_service(kiosk):
    traveller = traveller_of("citizen", seed=2, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    camera = kiosk.engine.devices.camera
    unplugs = []

    def unplug_once(event: FlowEvent) -> None:
        if event.state is State.FACE_CAPTURE and not unplugs:
            unplugs.append(event)
            camera.fail("unplugged")

    kiosk.engine.subscribe(unplug_once)
    outcome = serve(kiosk, traveller)
    assert outcome.decision == "REFER" and outcome.reasons == ("DEVICE_FAILURE",)
    assert kiosk.engine.state is State.OUT_OF_SERVICE
    gate = kiosk.engine.devices.gate
    assert not gate.entry_unlocked() and gate.exit_unlocked()  # egress free
    assert kiosk.store.transactions.get(outcome.transaction_id)["decision"] == "REFER"
    # Still out of service while the camera is down; back in service once it is repaired.
    assert kiosk.engine.run_once(0.5).decision == "OUT_OF_SERVICE"
    camera.repair()
    assert serve(kiosk, traveller).decision == "OPEN"


def test_gate_failure_while_entry_open_leaves_entry_locked(kiosk):
    traveller = traveller_of("citizen", seed=4, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    gate = kiosk.engine.devices.gate

    def break_lane(event: FlowEvent) -> None:
        if event.state is State.PASSAGE:
            kiosk.lane.events.append(LaneEvent.DOOR_FORCED)

    kiosk.engine.subscribe(break_lane)
    outcome = serve(kiosk, traveller)
    assert outcome.decision == "REFER" and not outcome.entry_left_unlocked
    assert not gate.entry_unlocked() and gate.exit_unlocked()
    assert kiosk.engine.state is State.OUT_OF_SERVICE


def test_cancel_abandons_and_secures(kiosk):
    traveller = traveller_of("walks_away", seed=1, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    kiosk.engine.subscribe(lambda e: kiosk.engine.cancel() if e.state is State.FACE_CAPTURE else None)
    outcome = serve(kiosk, traveller)
    assert outcome.decision == "ABANDONED" and outcome.reasons == ("CANCELLED",)


def test_help_request_is_recorded_in_any_state(kiosk):
    kiosk.engine.request_help()
    helps = [e for e in kiosk.store.outbox.pending(10) if e.type == "help"]
    assert len(helps) == 1 and json.loads(helps[0].payload)["state"] == "idle"


def test_missing_policy_keeps_lane_out_of_service(kiosk):
    outcome = kiosk.engine.run_once(0.1)
    assert outcome.decision == "OUT_OF_SERVICE"
    assert "policy" in kiosk.engine.out_of_service_reason
    assert not kiosk.engine.devices.gate.entry_unlocked()


def test_store_failure_before_opening_keeps_door_closed(kiosk, monkeypatch):
    traveller = traveller_of("citizen", seed=5, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    from kiosk.store import StoreError

    def disk_full(*args, **kwargs):
        raise StoreError("database or disk is full")

    monkeypatch.setattr(kiosk.store.transactions, "record_decision", disk_full)
    unlocked: list[bool] = []
    kiosk.engine.subscribe(lambda e: unlocked.append(kiosk.engine.devices.gate.entry_unlocked()))
    outcome = serve(kiosk, traveller)
    assert not any(unlocked)
    assert outcome.decision != "OPEN"
    assert kiosk.engine.state is State.OUT_OF_SERVICE


def test_population_mix_decisions_match_expectations(sim_config):
    summary = run_population(sim_config, 300, seed=11)
    assert summary["travellers"] == 300
    assert summary["unexpected_decisions"] == 0
    assert summary["gate_left_open"] == 0 and summary["interlock_violations"] == 0
    expected = Counter(t.expected for t in population(11, 300, datetime.now(UTC).date()))
    assert summary["decisions"] == dict(expected)


def test_engine_runs_in_a_worker_thread_while_observers_watch(kiosk):
    traveller = traveller_of("evisa", seed=9, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    seen: list[State] = []
    kiosk.engine.subscribe(lambda e: seen.append(e.state))
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("o", serve(kiosk, traveller)))
    worker.start()
    worker.join(10)
    assert result["o"].decision == "OPEN" and State.EXIT_OPEN in seen


def test_repaired_document_number_is_read_again_before_referral(kiosk):
    from dataclasses import replace

    traveller = traveller_of("citizen", seed=8, today=kiosk.clock.now().date())
    line = traveller.mrz_lines[1]
    digit = next(i for i, ch in enumerate(line[:9]) if ch in "0158")
    confusable = {"0": "O", "1": "I", "5": "S", "8": "B"}[line[digit]]
    misread = replace(
        traveller, mrz_lines=(traveller.mrz_lines[0], line[:digit] + confusable + line[digit + 1 :])
    )
    seed_reference(kiosk, [traveller])
    # Presented once: re-read requested, nobody presents again -> abandoned, never opened.
    assert serve(kiosk, misread).path[:3] == ("document_read", "document_problem", "abandoned")
    # Presented three times with the same misprint: the policy refers it.
    outcome = serve(kiosk, replace(misread, document_presentations=3))
    assert outcome.decision == "REFER" and "DOCUMENT_NUMBER_UNCONFIRMED" in outcome.reasons


def test_fingerprint_required_by_policy_is_checked(kiosk):
    from dataclasses import replace

    from kiosk.reference_data import Dataset, PolicyRules

    traveller = traveller_of("citizen", seed=12, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    policy = PolicyRules(fingerprint_required="always").model_dump(mode="json")
    kiosk.store.reference_data.apply(Dataset.POLICY, "fp-" + canonical_sha256(policy)[:12], policy)
    outcome = serve(kiosk, traveller)
    assert outcome.decision == "OPEN" and "fingerprint" in outcome.path
    wrong_finger = serve(kiosk, replace(traveller, finger_id=traveller.finger_id + 1))
    assert wrong_finger.decision == "REFER" and wrong_finger.reasons == ("FINGERPRINT_MISMATCH",)


def test_gate_failure_between_travellers_goes_out_of_service_instead_of_crashing(kiosk):
    traveller = traveller_of("citizen", seed=13, today=kiosk.clock.now().date())
    seed_reference(kiosk, [traveller])
    kiosk.engine.devices.gate.fail("RS-485 link lost")
    outcome = kiosk.engine.run_once(0.5)
    assert outcome.decision == "OUT_OF_SERVICE" and kiosk.engine.state is State.OUT_OF_SERVICE
