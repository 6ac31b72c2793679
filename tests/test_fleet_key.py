"""The fleet key: only a simulation makes its own; a kiosk with real devices and no provisioned key stays
out of service and says why; the key's id (never the key) is in the state message and in every hashed
bundle, and a bundle hashed under another key is refused."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.clock import SimulatedClock
from config import Config
from contract import schema
from contract.bundles import fleet_key_id
from contract.topics import Topics
from drivers.simulated.lane import SimulatedLane
from edge_agent.state import StateReporter
from edge_agent.sync import SyncHandler
from hub.__main__ import main as hub_main
from hub.bundles import encode, sign_bundle
from hub.signer import SYNC_PRIVATE_NAME
from kiosk.app import Kiosk, build_kiosk
from kiosk.flow.engine import NO_FLEET_KEY
from kiosk.flow.states import State
from kiosk.headless import DEVICE_CONNECT_TIMEOUT_S, wait_until_connected
from kiosk.privacy import load_fleet_key, read_fleet_key_id
from kiosk.simulation.wire import WireRig
from kiosk.store import Store
from provisioning.__main__ import main as provision
from tests.test_message_schemas import assert_valid, outbox_messages
from tests.test_sync import outbox

KEY_ROLE = "sync"  # the conftest `keys` fixture makes a bundle-signing pair
WATCHLIST = [
    {"record_id": "case-1", "subject_hash": "ab" * 32, "match_on": "person", "category": "watchlist"}
]


def _payloads(store: Store, kind: str) -> list[dict]:
    return outbox(store.path, kind)


@pytest.mark.timeout(120)
def test_a_kiosk_with_real_devices_never_makes_its_own_key_and_stays_out_of_service(tmp_path: Path) -> None:
    lane = SimulatedLane(SimulatedClock())
    with tempfile.TemporaryDirectory(prefix="gerbang-keys-") as wires:
        rig = WireRig(lane, Path(wires)).start()
        try:
            config = rig.configure(Config(base_dir=tmp_path))
            assert not config.simulated
            # Simulated travellers (the default) in front of real device drivers: still no key of its own.
            kiosk = build_kiosk(config, lane=lane)
            try:
                assert not config.fleet_key_path.exists() and kiosk.hasher is None
                kiosk.engine.start()
                wait_until_connected(kiosk, DEVICE_CONNECT_TIMEOUT_S)
                assert kiosk.engine.run_once(0.5).decision == "OUT_OF_SERVICE"
                assert kiosk.engine.state is State.OUT_OF_SERVICE
                assert kiosk.engine.out_of_service_reason == NO_FLEET_KEY
                audits = [a for a in _payloads(kiosk.store, "audit") if a["audit"] == "fleet_key_missing"]
                assert len(audits) == 1 and str(config.fleet_key_path) in audits[0]["detail"]
                assert {
                    "alert": "out_of_service",
                    "transaction_id": None,
                    "detail": NO_FLEET_KEY,
                } in _payloads(kiosk.store, "alert")
                topics = Topics(config.kiosk.site, config.kiosk.id)
                state = StateReporter(kiosk.store, topics).message()
                reported = json.loads(state.payload)
                assert (reported["mode"], reported["reason"], reported["fleet_key_id"]) == (
                    "out_of_service",
                    NO_FLEET_KEY,
                    None,
                )
                assert_valid([*outbox_messages(kiosk.store, topics), (state.topic, state.payload)])
            finally:
                kiosk.close()
            # The technician provisions the fleet's key; the next start serves.
            assert provision(["fleet-key", str(config.fleet_key_path)]) == 0
            kiosk = build_kiosk(config, lane=lane)
            try:
                key_id = fleet_key_id(load_fleet_key(config.fleet_key_path))
                assert kiosk.hasher is not None and kiosk.hasher.key_id == key_id
                kiosk.engine.start()
                wait_until_connected(kiosk, DEVICE_CONNECT_TIMEOUT_S)
                assert kiosk.engine.check_service() == "no entitlement policy loaded"  # past the key
                kiosk.engine.report_status()
                assert StateReporter(kiosk.store, topics).state()["fleet_key_id"] == key_id
            finally:
                kiosk.close()
        finally:
            rig.stop()


def test_an_all_simulated_kiosk_makes_its_own_key_and_names_it_in_its_state(kiosk: Kiosk) -> None:
    config = kiosk.config
    assert config.fleet_key_path.exists() and kiosk.hasher is not None
    key_id = read_fleet_key_id(config.fleet_key_path)
    assert key_id == kiosk.hasher.key_id and len(key_id) == 16
    assert key_id not in config.fleet_key_path.read_text()  # an id, not (a part of) the key
    kiosk.engine.report_status()
    topics = Topics(config.kiosk.site, config.kiosk.id)
    state = StateReporter(kiosk.store, topics).message()
    assert json.loads(state.payload)["fleet_key_id"] == key_id
    schema.validate(state.topic, state.payload)


def _handler(kiosk: Kiosk, public: Ed25519PrivateKey) -> tuple[SyncHandler, Topics]:
    config = kiosk.config
    topics = Topics(config.kiosk.site, config.kiosk.id)
    key_path = config.fleet_key_path
    handler = SyncHandler(
        kiosk.store, topics, public.public_key(), config, fleet_key_id=lambda: read_fleet_key_id(key_path)
    )
    return handler, topics


def test_a_bundle_hashed_under_another_fleet_key_is_refused(kiosk: Kiosk) -> None:
    private = Ed25519PrivateKey.generate()
    handler, topics = _handler(kiosk, private)
    other = fleet_key_id(b"another fleet's key, 32 bytes!!!")
    for dataset in ("watchlist", "evisa"):
        records = WATCHLIST if dataset == "watchlist" else []
        bundle = sign_bundle(private, dataset, "x1", records, site=topics.site, fleet_key_id=other)
        schema.validate(topics.sync(dataset), encode(bundle))
        outcome = handler.process(topics.sync(dataset), encode(bundle))
        assert (outcome.status, outcome.reason) == ("rejected", "fleet_key_mismatch")
    assert kiosk.store.reference_data.dataset_versions() == {}
    refused = [a for a in _payloads(kiosk.store, "audit") if a["audit"] == "bundle_refused"]
    assert refused == [
        {
            "audit": "bundle_refused",
            "dataset": d,
            "version": "x1",
            "reason": "fleet_key_mismatch",
            "setting": None,
        }
        for d in ("watchlist", "evisa")
    ]
    assert [a["reason"] for a in _payloads(kiosk.store, "alert")] == ["fleet_key_mismatch"] * 2
    # The same bundle under this kiosk's key applies.
    assert kiosk.hasher is not None
    good = sign_bundle(
        private, "watchlist", "w1", WATCHLIST, site=topics.site, fleet_key_id=kiosk.hasher.key_id
    )
    assert handler.process(topics.sync("watchlist"), encode(good)).status == "applied"
    assert_valid(outbox_messages(kiosk.store, topics))


def test_a_kiosk_without_a_key_takes_no_hashed_bundle_until_one_is_provisioned(kiosk: Kiosk) -> None:
    private = Ed25519PrivateKey.generate()
    handler, topics = _handler(kiosk, private)
    assert kiosk.hasher is not None
    key_id = kiosk.hasher.key_id
    key_file = kiosk.config.fleet_key_path
    saved = key_file.read_text()
    key_file.unlink()
    payload = encode(
        sign_bundle(private, "watchlist", "w1", WATCHLIST, site=topics.site, fleet_key_id=key_id)
    )
    assert handler.process(topics.sync("watchlist"), payload).reason == "fleet_key_missing"
    # The same retained bundle, redelivered once the key is back, is judged again (not "repeated").
    key_file.write_text(saved)
    assert handler.process(topics.sync("watchlist"), payload).status == "applied"


def test_hub_cli_names_the_fleet_key_of_hashed_bundles(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert hub_main(["keygen", "--out", str(tmp_path / "hub"), "--role", "sync"]) == 0
    key_file = tmp_path / "fleet.key"
    assert provision(["fleet-key", str(key_file)]) == 0
    records = tmp_path / "watchlist.json"
    records.write_text(json.dumps(WATCHLIST), encoding="utf-8")
    capsys.readouterr()
    common = ["sign-bundle", "--key", str(tmp_path / "hub" / SYNC_PRIVATE_NAME), "--site", "s1"]
    common += ["--version", "w1", "--records", str(records)]
    assert hub_main([*common, "--dataset", "watchlist", "--fleet-key", str(key_file)]) == 0
    assert json.loads(capsys.readouterr().out)["fleet_key_id"] == fleet_key_id(load_fleet_key(key_file))
    assert hub_main([*common, "--dataset", "watchlist"]) == 2  # a hashed dataset must name its key
    assert "fleet_key_id" in capsys.readouterr().err
    assert hub_main([*common, "--dataset", "visa_exempt", "--fleet-key-id", "0" * 16]) == 2
