"""Signed hub commands against a real mosquitto broker: accepted, and every way of being rejected."""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from common.backoff import Backoff
from contract.signing import load_public_key
from contract.topics import Topics
from edge_agent.commands import CommandHandler
from edge_agent.publisher import Publisher, PublisherOptions
from hub.__main__ import main as hub_main
from hub.signer import PRIVATE_NAME, PUBLIC_NAME, sign_command
from kiosk.store import Request, Store
from tests.mqtt_broker import MosquittoBroker
from tests.test_edge_agent import wait_for

TOPICS = Topics("soetta-t3", "gate-07")
TARGET = {"site": TOPICS.site, "kiosk": TOPICS.kiosk}
Setup = tuple["Hub", Store, Ed25519PrivateKey]


class Hub:
    """Sends commands and collects cmd_result messages."""

    def __init__(self, port: int, topics: Topics = TOPICS) -> None:
        self.topics = topics
        self.target = {"site": topics.site, "kiosk": topics.kiosk}
        self.results: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-cmd-test")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self.connected.wait(10)

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"{self.topics.base}/cmd_result/+", qos=1)
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.results[msg.topic.rsplit("/", 1)[1]] = json.loads(msg.payload)

    def send(self, name: str, body: dict[str, Any] | bytes) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.publish(self.topics.command(name), payload, qos=1).wait_for_publish(5)

    def result(self, command_id: str) -> dict[str, Any]:
        wait_for(lambda: command_id in self.results, 10, f"cmd_result {command_id}")
        with self.lock:
            return self.results.pop(command_id)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def setup(tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]) -> Iterator[Setup]:
    broker = MosquittoBroker(tmp_path)
    broker.start()
    store = Store.open(tmp_path / "kiosk.sqlite3")
    private, public_path = keys
    handler = CommandHandler(store, TOPICS, load_public_key(public_path))
    options = PublisherOptions(host="127.0.0.1", port=broker.port, backoff=Backoff(0.3, 1.0))
    publisher = Publisher(store, TOPICS, options, [handler])
    thread = threading.Thread(target=publisher.run, daemon=True)
    thread.start()
    wait_for(lambda: publisher.connections > 0, 10, "agent connected")
    hub = Hub(broker.port)
    # The SUBACK is not tracked by the agent; a short pause lets the broker register the subscription.
    time.sleep(0.3)
    try:
        yield hub, store, private
    finally:
        hub.close()
        publisher.stop()
        thread.join(10)
        store.close()
        broker.stop()


def outbox(db: Path, kind: str) -> list[dict[str, Any]]:
    # Straight from SQLite, delivered or not: the agent drains the outbox while the test looks.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT payload FROM outbox WHERE type = ? ORDER BY seq", (kind,)).fetchall()
    return [json.loads(row[0]) for row in rows]


def resign(private: Ed25519PrivateKey, body: dict[str, Any]) -> dict[str, Any]:
    from contract.signing import canonical

    unsigned = {k: v for k, v in body.items() if k != "signature"}
    return {**unsigned, "signature": base64.b64encode(private.sign(canonical(unsigned))).decode()}


@pytest.mark.timeout(60)
def test_good_command_is_accepted_and_audited(tmp_path: Path, setup: Setup) -> None:
    hub, store, private = setup
    body = sign_command(private, "set_mode", TARGET, {"mode": "maintenance"})
    hub.send("set_mode", body)
    result = hub.result(body["command_id"])
    assert result["status"] == "accepted"
    assert store.requests.open() == [Request(body["command_id"], "set_mode", {"mode": "maintenance"})]
    audits = outbox(tmp_path / "kiosk.sqlite3", "audit")
    assert {"audit": "command_accepted", "command_id": body["command_id"], "name": "set_mode"} in audits
    assert outbox(tmp_path / "kiosk.sqlite3", "alert") == []

    diag = sign_command(private, "diagnostics", TARGET)
    hub.send("diagnostics", diag)
    summary = hub.result(diag["command_id"])
    assert summary["status"] == "accepted"
    assert set(summary["result"]) == {"backlog"}

    reboot = sign_command(private, "reboot", TARGET)
    hub.send("reboot", reboot)
    assert hub.result(reboot["command_id"])["status"] == "accepted"
    assert [r.name for r in store.requests.open()] == ["set_mode", "reboot"]


def _bad_signature(private: Ed25519PrivateKey) -> tuple[str, dict[str, Any]]:
    body = sign_command(private, "set_mode", TARGET, {"mode": "in_service"})
    body["args"] = {"mode": "maintenance"}  # tampered after signing
    return "set_mode", body


def _unsigned(private: Ed25519PrivateKey) -> tuple[str, dict[str, Any]]:
    body = sign_command(private, "sync_now", TARGET)
    body["signature"] = ""
    return "sync_now", body


def _foreign_key(_private: Ed25519PrivateKey) -> tuple[str, dict[str, Any]]:
    return "sync_now", sign_command(Ed25519PrivateKey.generate(), "sync_now", TARGET)


def _expired(private: Ed25519PrivateKey) -> tuple[str, dict[str, Any]]:
    past = datetime.now(UTC) - timedelta(minutes=10)
    return "reboot", sign_command(private, "reboot", TARGET, issued_at=past)


def _wrong_target(private: Ed25519PrivateKey) -> tuple[str, dict[str, Any]]:
    return "reboot", sign_command(private, "reboot", {"site": TOPICS.site, "kiosk": "gate-08"})


def _unknown(private: Ed25519PrivateKey) -> tuple[str, dict[str, Any]]:
    return "format_disk", sign_command(private, "format_disk", TARGET)


def _name_mismatch(private: Ed25519PrivateKey) -> tuple[str, dict[str, Any]]:
    return "sync_now", sign_command(private, "reboot", TARGET)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_bad_signature, "bad_signature"),
        (_unsigned, "bad_signature"),
        (_foreign_key, "bad_signature"),
        (_expired, "stale"),
        (_wrong_target, "wrong_target"),
        (_unknown, "unknown_command"),
        (_name_mismatch, "malformed"),
    ],
    ids=["tampered", "unsigned", "foreign-key", "expired", "wrong-target", "unknown", "topic-mismatch"],
)
def test_bad_commands_are_rejected_with_an_alert(
    tmp_path: Path, setup: Setup, make: Callable[[Ed25519PrivateKey], tuple[str, dict[str, Any]]], reason: str
) -> None:
    hub, store, private = setup
    topic_name, body = make(private)
    hub.send(topic_name, body)
    result = hub.result(body["command_id"])
    assert result == {"command_id": body["command_id"], "status": "rejected", "reason": reason}
    alerts = outbox(tmp_path / "kiosk.sqlite3", "alert")
    assert alerts == [{"alert": "command_rejected", "reason": reason, "command_id": body["command_id"]}]
    assert outbox(tmp_path / "kiosk.sqlite3", "audit") == []
    assert store.meta.get("pending_reboot") is None


@pytest.mark.timeout(60)
def test_replayed_command_is_rejected(tmp_path: Path, setup: Setup) -> None:
    hub, _store, private = setup
    body = sign_command(private, "sync_now", TARGET)
    hub.send("sync_now", body)
    assert hub.result(body["command_id"])["status"] == "accepted"
    hub.send("sync_now", body)
    assert hub.result(body["command_id"])["reason"] == "replayed"
    # Same nonce under a fresh id is still a replay.
    again = resign(private, {**body, "command_id": "0f8c3f5e-7c1e-4d8e-9a57-0d9b8a1f2c3d"})
    hub.send("sync_now", again)
    assert hub.result(again["command_id"])["reason"] == "replayed"
    alerts = outbox(tmp_path / "kiosk.sqlite3", "alert")
    assert [a["reason"] for a in alerts] == ["replayed", "replayed"]


@pytest.mark.timeout(60)
def test_malformed_payload_is_rejected(tmp_path: Path, setup: Setup) -> None:
    hub, _store, _private = setup
    hub.send("reboot", b"not json")
    assert hub.result("invalid") == {"command_id": None, "status": "rejected", "reason": "malformed"}
    assert outbox(tmp_path / "kiosk.sqlite3", "alert")[0]["reason"] == "malformed"


def test_seen_set_is_pruned(tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]) -> None:
    private, public_path = keys
    with Store.open(tmp_path / "k.sqlite3") as store:
        handler = CommandHandler(store, TOPICS, load_public_key(public_path), freshness_s=60)
        start = datetime.now(UTC)
        for minute in range(10):
            now = start + timedelta(minutes=minute)
            body = sign_command(private, "sync_now", TARGET, issued_at=now)
            result = handler.process(TOPICS.command("sync_now"), json.dumps(body).encode(), now=now)
            assert result.status == "accepted"
        seen = json.loads(store.meta.get("commands_seen") or "{}")
        # Only the entries within 2 × the window survive (one id + one nonce per command).
        assert len(seen) <= 6


def test_hub_keygen_cli(tmp_path: Path) -> None:
    assert hub_main(["keygen", "--out", str(tmp_path)]) == 0
    assert (tmp_path / PRIVATE_NAME).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / PUBLIC_NAME).exists()
    assert hub_main(["keygen", "--out", str(tmp_path)]) == 2
