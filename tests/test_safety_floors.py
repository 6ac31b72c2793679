"""The kiosk's own ``[safety]`` floors: no signed policy or settings bundle can weaken them. A bundle past
one is refused whole, with an alert and an audit event naming the setting, and nothing changes."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config import HUB_CONFIG_FILE, Config, ConfigError, load_config
from contract.signing import load_public_key
from contract.topics import Topics
from edge_agent.agent import Overrides, build_publisher
from edge_agent.sync import SyncHandler
from hub.bundles import encode, publish_bundle, sign_bundle
from kiosk.reference_data import PolicyRules
from kiosk.store import Store
from tests.mqtt_broker import MosquittoBroker
from tests.test_edge_agent import wait_for
from tests.test_message_schemas import assert_valid, outbox_messages
from tests.test_sync import outbox
from tests.test_sync_settings import kiosk_file

KEY_ROLE = "sync"  # the conftest `keys` fixture makes a bundle-signing pair
POLICY = PolicyRules().model_dump(mode="json")


def _refusals(db: Path) -> list[dict[str, Any]]:
    return [a for a in outbox(db, "audit") if a["audit"] == "bundle_refused"]


@pytest.mark.timeout(60)
def test_a_policy_bundle_cannot_switch_the_face_check_off(
    tmp_path: Path, broker: MosquittoBroker, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private, public = keys
    config = load_config(kiosk_file(tmp_path, public, broker.url))
    topics = Topics(config.kiosk.site, config.kiosk.id)
    with Store.open(config.store_path) as store:
        publisher = build_publisher(config, store, Overrides())
        handler = next(h for h in publisher.inbound if isinstance(h, SyncHandler))
        thread = threading.Thread(target=publisher.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: publisher.connections > 0, 15, "agent connected")
            publish_bundle(
                "127.0.0.1",
                broker.port,
                topics.site,
                sign_bundle(private, "policy", "p1", POLICY, site=topics.site),
            )
            wait_for(lambda: handler.stats.applied == 1, 20, "policy p1 applied")
            weak = {**POLICY, "face_match_required": False}
            publish_bundle(
                "127.0.0.1",
                broker.port,
                topics.site,
                sign_bundle(private, "policy", "p2", weak, site=topics.site),
            )
            wait_for(lambda: handler.stats.rejected == 1, 20, "policy p2 refused")
        finally:
            publisher.stop()
            thread.join(10)
        rules = store.reference_data.policy_rules()
        assert rules is not None and rules.face_match_required
        assert store.reference_data.dataset_versions() == {"policy": "p1"}
        assert_valid(outbox_messages(store, topics))
    assert _refusals(config.store_path) == [
        {
            "audit": "bundle_refused",
            "dataset": "policy",
            "version": "p2",
            "reason": "safety_floor",
            "setting": "face_match_required",
        }
    ]
    assert outbox(config.store_path, "alert")[-1] == {
        "alert": "sync_rejected",
        "dataset": "policy",
        "version": "p2",
        "reason": "safety_floor",
    }


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"chip_required": "never"}, "chip_required"),
        ({"min_age_years": 10}, "min_age_years"),
    ],
)
def test_other_policy_floors(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path], change: dict, setting: str
) -> None:
    private, public = keys
    config = load_config(kiosk_file(tmp_path, public))
    topics = Topics(config.kiosk.site, config.kiosk.id)
    with Store.open(config.store_path) as store:
        handler = SyncHandler(store, topics, load_public_key(public), config, fleet_key_id=lambda: None)
        bundle = encode(sign_bundle(private, "policy", "p1", {**POLICY, **change}, site=topics.site))
        outcome = handler.process(topics.sync("policy"), bundle)
        assert (outcome.status, outcome.reason) == ("rejected", "safety_floor")
        assert store.reference_data.policy_rules() is None
    assert _refusals(config.store_path)[0]["setting"] == setting


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"agent": {"outbox_retention_days": 3650}}, "agent.outbox_retention_days"),
        ({"agent": {"command_freshness_s": 3600}}, "agent.command_freshness_s"),
        ({"face": {"operating_point": "fmr_1e-2"}}, "face.operating_point"),
        ({"face": {"max_attempts": 10}}, "face.max_attempts"),
        ({"fingerprint": {"max_attempts": 10}}, "fingerprint.max_attempts"),
        ({"flow": {"face_timeout_s": 9}, "doors": {"door_open_max_s": 3600}}, "doors.door_open_max_s"),
    ],
    ids=["retention", "freshness", "operating-point", "face-attempts", "finger-attempts", "doors"],
)
def test_a_settings_bundle_past_a_ceiling_is_refused_whole(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path], settings: dict, setting: str
) -> None:
    private, public = keys
    config = load_config(kiosk_file(tmp_path, public))
    topics = Topics(config.kiosk.site, config.kiosk.id)
    with Store.open(config.store_path) as store:
        handler = SyncHandler(store, topics, load_public_key(public), config, fleet_key_id=lambda: None)
        outcome = handler.process(
            topics.sync("config"), encode(sign_bundle(private, "config", "c1", settings, site=topics.site))
        )
        assert (outcome.status, outcome.reason) == ("rejected", "safety_floor")
        assert store.requests.open() == []  # no restart for settings that were not taken
        assert_valid(outbox_messages(store, topics))
    assert not (config.data_dir / HUB_CONFIG_FILE).exists()
    assert _refusals(config.store_path) == [
        {
            "audit": "bundle_refused",
            "dataset": "config",
            "version": "c1",
            "reason": "safety_floor",
            "setting": setting,
        }
    ]
    assert load_config(kiosk_file(tmp_path, public)).flow.face_timeout_s == 20  # nothing of it taken


def test_within_the_ceilings_applies_and_the_technician_may_raise_them(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private, public = keys
    path = kiosk_file(tmp_path, public)
    config = load_config(path)
    topics = Topics(config.kiosk.site, config.kiosk.id)
    long = {"agent": {"outbox_retention_days": 365}}
    with Store.open(config.store_path) as store:
        handler = SyncHandler(store, topics, load_public_key(public), config, fleet_key_id=lambda: None)
        within = sign_bundle(
            private, "config", "c1", {"agent": {"outbox_retention_days": 60}}, site=topics.site
        )
        assert handler.process(topics.sync("config"), encode(within)).status == "applied"
        past = encode(sign_bundle(private, "config", "c2", long, site=topics.site))
        assert handler.process(topics.sync("config"), past).reason == "safety_floor"
    assert load_config(path).agent.outbox_retention_days == 60
    # The kiosk's own file raises its ceiling: the same kind of bundle is then the hub's to send.
    path.write_text(path.read_text() + "\n[safety]\nmax_outbox_retention_days = 400\n", encoding="utf-8")
    raised = load_config(path)
    with Store.open(config.store_path) as store:
        handler = SyncHandler(store, topics, load_public_key(public), raised, fleet_key_id=lambda: None)
        newer = encode(sign_bundle(private, "config", "c3", long, site=topics.site))
        assert handler.process(topics.sync("config"), newer).status == "applied"
    assert load_config(path).agent.outbox_retention_days == 365


def test_the_kiosk_ignores_a_stored_settings_file_past_its_ceilings(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = kiosk_file(tmp_path, keys[1])
    written = load_config(path).data_dir / HUB_CONFIG_FILE
    # Written by an agent before the ceiling existed, or by hand.
    written.write_text(json.dumps({"version": "old", "settings": {"agent": {"command_freshness_s": 3600}}}))
    with caplog.at_level(logging.ERROR, logger="config.load"):
        config = load_config(path)
    assert config.agent.command_freshness_s == 60 and config.hub_settings_version is None
    assert "agent.command_freshness_s" in caplog.text


def test_the_safety_section_is_checked_like_any_other() -> None:
    with pytest.raises(ValueError):
        Config.model_validate({"safety": {"max_face_fmr": 0}})
    with pytest.raises(ValueError):
        Config.model_validate({"safety": {"min_chip_required": "sometimes"}})


def test_the_loader_names_a_bad_safety_key(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text("[safety]\nmax_command_freshness_s = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"safety\.max_command_freshness_s"):
        load_config(path)
