"""The kiosk's side of the hub link: requests acted on by the engine, status heartbeat, state, metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contract.topics import Topics
from edge_agent.metrics import WINDOW_META_KEY, MetricsReporter, histogram
from edge_agent.state import StateReporter
from kiosk.app import build_kiosk
from kiosk.headless import run_population
from kiosk.remote import HubDesk, read_status
from kiosk.simulation.population import reference_datasets, traveller_of
from kiosk.store import Request, Store, canonical_sha256

TOPICS = Topics("lampung-barat", "kiosk-sim-01")


def serve(kiosk, archetype: str = "citizen", seed: int = 3):
    traveller = traveller_of(archetype, seed=seed, today=kiosk.clock.now().date())
    for name, records in reference_datasets([traveller], kiosk.hasher, kiosk.clock.now().date()).items():
        kiosk.store.reference_data.apply(name, canonical_sha256(records)[:16], records)
    kiosk.lane.arrive(traveller)
    try:
        return kiosk.engine.run_once(1.0)
    finally:
        kiosk.lane.leave()


def audits(store: Store) -> list[dict]:
    return [json.loads(e.payload) for e in store.outbox.pending(10_000) if e.type == "audit"]


def test_hub_maintenance_mode_closes_the_lane_and_survives_a_restart(kiosk, sim_config):
    assert serve(kiosk).decision == "OPEN"
    kiosk.store.requests.post(Request("c-1", "set_mode", {"mode": "maintenance", "reason": "lens cleaning"}))
    outcome = serve(kiosk)
    assert outcome.decision == "OUT_OF_SERVICE" and outcome.transaction_id is None
    assert kiosk.engine.out_of_service_reason == "set to maintenance by the hub"
    assert not kiosk.engine.devices.gate.entry_unlocked()
    status = read_status(kiosk.store)
    assert status is not None and status["mode"] == "maintenance"
    assert {
        "audit": "command_executed",
        "command_id": "c-1",
        "name": "set_mode",
        "outcome": "done",
    } in audits(kiosk.store)
    assert kiosk.store.requests.open() == []
    # A new process reads the mode back: a lane closed by the hub stays closed after a reboot.
    assert HubDesk(kiosk.store).mode == "maintenance"

    kiosk.store.requests.post(Request("c-2", "set_mode", {"mode": "in_service"}))
    assert serve(kiosk, seed=4).decision == "OPEN"
    assert read_status(kiosk.store)["mode"] == "in_service"


def test_officer_exit_override_frees_the_exit_with_entry_locked_then_secures(kiosk):
    gate = kiosk.engine.devices.gate
    exits: list[bool] = []
    original = gate.set_exit_unlocked

    def record(unlocked: bool) -> None:
        exits.append(unlocked)
        original(unlocked)

    gate.set_exit_unlocked = record  # observe the relay commands the override issues
    kiosk.store.requests.post(Request("c-3", "open_exit_door", {"hold_s": 2}))
    serve(kiosk)
    assert True in exits and exits.index(True) < len(exits) - 1
    assert gate.interlock_violations == 0
    assert not gate.exit_unlocked() and not gate.entry_unlocked()
    alerts = [json.loads(e.payload) for e in kiosk.store.outbox.pending(1000) if e.type == "alert"]
    assert any(a["alert"] == "officer_exit_override" and a["hold_s"] == 2.0 for a in alerts)
    assert audits(kiosk.store)[-1]["outcome"] == "done"


def test_reboot_and_reload_ask_the_supervisor_for_a_restart(kiosk):
    kiosk.store.requests.post(Request("c-4", "reload_config", {}))
    serve(kiosk)
    assert kiosk.engine.desk.restart_requested == "reload_config"
    assert audits(kiosk.store)[-1] == {
        "audit": "command_executed",
        "command_id": "c-4",
        "name": "reload_config",
        "outcome": "restart_requested",
    }


@pytest.mark.parametrize(
    "request_",
    [
        Request("x", "set_mode", {"mode": "party"}),
        Request("x", "set_mode", {"mode": "maintenance", "colour": "red"}),
        Request("x", "open_exit_door", {"hold_s": 3600}),
        Request("x", "open_exit_door", {"hold_s": True}),
        Request("x", "reboot", {"now": True}),
        Request("x", "format_disk", {}),
    ],
)
def test_requests_the_kiosk_cannot_act_on_are_refused_before_queueing(tmp_path: Path, request_) -> None:
    with Store.open(tmp_path / "k.sqlite3") as store:
        with pytest.raises(ValueError):
            store.requests.post(request_)
        assert store.requests.open() == []


def test_same_command_id_is_queued_once(tmp_path: Path) -> None:
    with Store.open(tmp_path / "k.sqlite3") as store:
        assert store.requests.post(Request("same", "reboot", {}))
        assert not store.requests.post(Request("same", "reboot", {}))
        assert len(store.requests.open()) == 1


def test_state_calls_the_kiosk_down_when_its_heartbeat_stops(kiosk):
    serve(kiosk)
    reporter = StateReporter(kiosk.store, TOPICS, interval_s=60)
    state = reporter.state()
    assert state["kiosk_running"] and state["mode"] == "in_service"
    assert state["devices"]["gate"]["state"] == "ok"
    assert state["model"] and state["config"] and state["datasets"]
    assert state["last_transaction"] is not None
    # The first call always produces (birth), an unchanged state within the interval does not.
    assert len(reporter.produce()) == 1 and reporter.produce() == []

    later = datetime.now(UTC) + timedelta(seconds=3 * kiosk.engine.desk.heartbeat_s + 5)
    stale = StateReporter(kiosk.store, TOPICS, now=lambda: later).state()
    assert not stale["kiosk_running"] and stale["mode"] == "out_of_service"
    assert "heartbeat" in stale["reason"]


def test_metrics_windows_are_contiguous_and_count_each_transaction_once(sim_config, tmp_path: Path) -> None:
    db = tmp_path / "run.sqlite3"
    summary = run_population(sim_config, 60, seed=5, db=db)
    with Store.open(db) as store:
        reporter = MetricsReporter(store, TOPICS)

        def publish() -> dict:
            message = reporter.produce()[0]
            assert message.sent is not None
            message.sent()
            return json.loads(message.payload)

        reporter.produce()
        # A window that never left (offline) is not lost: the next one starts where the last sent ended.
        assert store.meta.get(WINDOW_META_KEY) is None
        first = publish()
        finished = sum(n for d, n in summary["decisions"].items() if d != "NO_TRANSACTION")
        assert first["counters"]["transactions"] == finished
        assert first["counters"]["decisions"] == {
            d: n for d, n in summary["decisions"].items() if d != "NO_TRANSACTION"
        }
        assert sum(first["histograms"]["face_score"]["counts"]) > 0
        assert first["outbox"]["backlog"] == store.outbox.backlog() > 0
        assert first["system"]["disk_free_mb"] > 0
        second = publish()
        assert second["window_start"] == first["window_end"]
        assert second["counters"]["transactions"] == 0
        # An agent restart starts where the last published window ended.
        reporter = MetricsReporter(store, TOPICS)
        third = publish()
        assert third["window_start"] == second["window_end"]


def test_histogram_buckets() -> None:
    assert histogram([0.0, 0.29, 0.3, 0.99, 1.0, 5.0], (0.0, 0.3, 0.6, 1.0))["counts"] == [2, 1, 3]


@pytest.mark.timeout(60)
def test_signed_set_mode_travels_hub_to_lane_and_back_to_the_state_topic(tmp_path: Path) -> None:
    import threading

    from config import Config
    from edge_agent.agent import Overrides, build_publisher
    from hub.signer import keygen, load_private_key, sign_command
    from tests.mqtt_broker import MosquittoBroker
    from tests.test_commands import Hub
    from tests.test_edge_agent import wait_for

    private_path, public_path = keygen(tmp_path / "keys")
    broker = MosquittoBroker(tmp_path)
    broker.start()
    config = Config.model_validate(
        {
            "agent": {"broker": broker.url, "command_key_file": str(public_path), "backoff_max_s": 1.0},
            "base_dir": tmp_path,
        }
    )
    kiosk = build_kiosk(config)
    kiosk.engine.start()
    topics = Topics(config.kiosk.site, config.kiosk.id)
    agent_store = Store.open(config.store_path)
    publisher = build_publisher(config, agent_store, Overrides())
    thread = threading.Thread(target=publisher.run, daemon=True)
    thread.start()
    states: list[dict] = []
    hub = Hub(broker.port, topics)
    hub.client.message_callback_add(topics.state, lambda _c, _u, m: states.append(json.loads(m.payload)))
    hub.client.subscribe(topics.state, qos=1)
    try:
        wait_for(lambda: publisher.connections > 0, 10, "agent connected")
        serve(kiosk)
        wait_for(lambda: any(s["mode"] == "in_service" for s in states), 10, "in service on the state topic")
        body = sign_command(load_private_key(private_path), "set_mode", hub.target, {"mode": "maintenance"})
        hub.send("set_mode", body)
        assert hub.result(body["command_id"])["status"] == "accepted"
        serve(kiosk, seed=4)  # the lane picks the request up between travellers
        wait_for(lambda: states[-1]["mode"] == "maintenance", 10, "maintenance on the state topic")
        assert kiosk.engine.state.value == "out_of_service"
    finally:
        hub.close()
        publisher.stop()
        thread.join(10)
        agent_store.close()
        kiosk.close()
        broker.stop()


def test_compaction_removes_only_delivered_events_past_retention(tmp_path: Path) -> None:
    import time

    from edge_agent.agent import compact_outbox

    with Store.open(tmp_path / "k.sqlite3") as store:
        events = [store.outbox.add("audit", {"n": i}) for i in range(5)]
        store.outbox.mark_delivered([e.seq for e in events[:3]])
        # The hub has stored everything (tests/test_hub_ack.py covers the watermark itself).
        store.meta.set("hub_ack_seq", str(events[-1].seq))
        time.sleep(0.05)
        compact_outbox(store, timedelta(seconds=0.01))
        assert [e.seq for e in store.outbox.pending(100)] == [e.seq for e in events[3:]]
        assert store.outbox.get(events[0].seq) is None
        # Retention not yet reached: nothing goes.
        store.outbox.mark_delivered([events[3].seq])
        compact_outbox(store, timedelta(days=30))
        assert store.outbox.get(events[3].seq) is not None
        # A seq is never reused after compaction.
        assert store.outbox.add("audit", {"n": 9}).seq == events[-1].seq + 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("command", "code"), [("reboot", 76), ("reload_config", 75)])
def test_touchscreen_kiosk_stops_for_its_supervisor_when_the_hub_asks(
    tmp_path: Path, command: str, code: int
) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    config = tmp_path / "kiosk.toml"
    config.write_text("[ui]\nfullscreen = false\nwindow_size = [800, 480]\n", encoding="utf-8")
    db = tmp_path / "var" / "gerbang.sqlite3"
    db.parent.mkdir()
    with Store.open(db) as store:
        store.requests.post(Request("c-9", command, {}))
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env.update({"PYTHONPATH": str(root), "SDL_VIDEODRIVER": "offscreen"})
    done = subprocess.run(
        [sys.executable, "-m", "kiosk", "run", "--config", str(config), "--db", str(db)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == code, done.stderr[-3000:]
    with Store.open(db) as store:
        assert store.requests.open() == []
        assert audits(store)[-1]["outcome"] == "restart_requested"
