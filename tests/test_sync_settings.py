"""Fleet settings as a signed ``config`` bundle: validated against the kiosk's own config, written
atomically, taken up by the kiosk at its next start (which the agent requests), refused when unsafe."""

from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config import HUB_CONFIG_FILE, HUB_SETTABLE, load_config
from contract import schema
from contract.bundles import records_sha256
from contract.signing import canonical, load_public_key
from contract.topics import Topics
from edge_agent.agent import Overrides, build_publisher
from edge_agent.state import StateReporter
from edge_agent.sync import SyncHandler
from hub.bundles import encode, publish_bundle, sign_bundle
from kiosk.store import Store
from tests.mqtt_broker import MosquittoBroker
from tests.test_edge_agent import wait_for
from tests.test_sync import outbox

KEY_ROLE = "sync"  # the conftest `keys` fixture makes a bundle-signing pair
SETTINGS = {"flow": {"face_timeout_s": 7.5}, "ui": {"language": "en"}, "face": {"max_attempts": 2}}


def kiosk_file(tmp_path: Path, public_key: Path, broker_url: str = "mqtt://127.0.0.1:1") -> Path:
    (tmp_path / "var").mkdir(exist_ok=True)
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f'[kiosk]\nid = "gate-07"\nsite = "soetta-t3"\n\n[flow]\nface_timeout_s = 20\n\n'
        f'[agent]\nbroker = "{broker_url}"\nsync_key_file = "{public_key}"\nbackoff_max_s = 1\n',
        encoding="utf-8",
    )
    return path


def alerts(store: Store) -> list[dict]:
    return [json.loads(e.payload) for e in store.outbox.pending(1000) if e.type == "alert"]


@pytest.mark.timeout(60)
def test_settings_bundle_reaches_the_kiosk_config_and_asks_for_a_restart(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private, public_path = keys
    broker = MosquittoBroker(tmp_path)
    broker.start()
    path = kiosk_file(tmp_path, public_path, broker.url)
    config = load_config(path)
    topics = Topics(config.kiosk.site, config.kiosk.id)
    store = Store.open(config.store_path)
    publisher = build_publisher(config, store, Overrides())
    thread = threading.Thread(target=publisher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: publisher.connections > 0, 10, "agent connected")
        bundle = sign_bundle(private, "config", "fleet-2026-11-27", SETTINGS, site=topics.site)
        schema.validate(topics.sync("config"), encode(bundle))
        publish_bundle("127.0.0.1", broker.port, topics.site, bundle)
        written = config.data_dir / HUB_CONFIG_FILE
        wait_for(written.exists, 10, "settings file written")
        wait_for(lambda: store.requests.open() != [], 10, "restart requested")
    finally:
        publisher.stop()
        thread.join(10)
    try:
        assert [r.name for r in store.requests.open()] == ["reload_config"]
        applied = {"audit": "dataset_applied", "dataset": "config", "version": "fleet-2026-11-27"}
        assert applied | {"kind": "full", "records": 3} in outbox(config.store_path, "audit")
        assert StateReporter(store, topics).state()["datasets"]["config"] == "fleet-2026-11-27"
    finally:
        store.close()
        broker.stop()

    restarted = load_config(path)
    assert restarted.flow.face_timeout_s == 7.5 and restarted.ui.language == "en"
    assert restarted.face.max_attempts == 2
    assert restarted.hub_settings_version == "fleet-2026-11-27"
    assert restarted.version() != config.version()  # transactions record which settings decided them
    # What the hub may not touch is still the technician's.
    assert restarted.kiosk.id == "gate-07" and restarted.agent.sync_key_file == public_path


@pytest.mark.parametrize(
    ("settings", "kind", "reason"),
    [
        ({"devices": {"gate": {"backend": "gpio"}}}, "full", "invalid_records"),
        ({"security": {"fleet_key_file": "/tmp/k"}}, "full", "invalid_records"),
        ({"agent": {"broker": "mqtt://evil:1883"}}, "full", "invalid_records"),
        ({"face": {"threshold": 0.1}}, "full", "invalid_records"),
        ({"flow": {"face_timeout_s": -1}}, "full", "invalid_records"),
        ({"flow": {"no_such_key": 1}}, "full", "invalid_records"),
        ({"flow": {}}, "full", "invalid_records"),
        ([{"flow": 1}], "full", "malformed"),
    ],
    ids=["devices", "keys", "broker", "threshold", "out-of-range", "unknown-key", "empty", "not-object"],
)
def test_unsafe_or_invalid_settings_are_refused_and_nothing_changes(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path], settings: object, kind: str, reason: str
) -> None:
    private, public_path = keys
    config = load_config(kiosk_file(tmp_path, public_path))
    topics = Topics(config.kiosk.site, config.kiosk.id)
    with Store.open(config.store_path) as store:
        handler = SyncHandler(store, topics, load_public_key(public_path), config, fleet_key_id=lambda: None)
        bundle = sign_bundle(private, "config", "bad-1", {"flow": {"face_timeout_s": 9}}, site=topics.site)
        # Re-signed with the content under test: the signature is right, the content is not.
        bundle = {k: v for k, v in bundle.items() if k not in ("signature", "records_sha256")}
        bundle["records"], bundle["kind"] = settings, kind
        bundle["records_sha256"] = records_sha256(settings)
        bundle["signature"] = base64.b64encode(private.sign(canonical(bundle))).decode()
        outcome = handler.process(topics.sync("config"), encode(bundle))
        assert (outcome.status, outcome.reason) == ("rejected", reason)
        assert alerts(store)[-1] == {
            "alert": "sync_rejected",
            "dataset": "config",
            "version": "bad-1",
            "reason": reason,
        }
        assert not (config.data_dir / HUB_CONFIG_FILE).exists()
        assert store.requests.open() == []
    assert load_config(kiosk_file(tmp_path, public_path)).flow.face_timeout_s == 20


def test_a_delta_of_settings_is_refused(tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]) -> None:
    with pytest.raises(ValueError):
        sign_bundle(keys[0], "config", "d1", SETTINGS, site="soetta-t3", kind="delta", base_version="x")


def test_an_agent_without_the_kiosk_config_does_not_take_settings(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private, public_path = keys
    topics = Topics("soetta-t3", "gate-07")
    with Store.open(tmp_path / "k.sqlite3") as store:
        handler = SyncHandler(store, topics, load_public_key(public_path), fleet_key_id=lambda: None)
        bundle = encode(sign_bundle(private, "config", "c1", SETTINGS, site=topics.site))
        assert handler.process(topics.sync("config"), bundle).reason == "unknown_dataset"


def test_kiosk_starts_on_its_own_file_when_the_settings_file_is_unusable(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = kiosk_file(tmp_path, keys[1])
    written = load_config(path).data_dir / HUB_CONFIG_FILE
    written.parent.mkdir(parents=True, exist_ok=True)
    for content in ("{not json", json.dumps({"version": "v", "settings": {"devices": {"gate": {}}}})):
        written.write_text(content, encoding="utf-8")
        with caplog.at_level(logging.ERROR, logger="config.load"):
            config = load_config(path)
        assert config.flow.face_timeout_s == 20 and config.hub_settings_version is None
        assert "ignoring the hub's settings" in caplog.text
        caplog.clear()


def test_the_schema_allows_exactly_what_the_hub_may_set() -> None:
    settings = schema.schemas()["sync-bundle"]["$defs"]["settings"]["properties"]
    assert set(settings) == set(HUB_SETTABLE)
    for section, keys in HUB_SETTABLE.items():
        names = settings[section].get("propertyNames", {}).get("enum")
        assert (None if names is None else frozenset(names)) == keys, section
