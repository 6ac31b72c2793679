"""The edge agent's store-and-forward publisher against a real mosquitto broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from common.backoff import Backoff
from contract.topics import Topics
from edge_agent.publisher import Publisher, PublisherOptions, event_message
from kiosk.store import Store
from tests.mqtt_broker import MosquittoBroker

ROOT = Path(__file__).resolve().parent.parent
TOPICS = Topics("soetta-t3", "gate-07")


class Subscriber:
    """Plays the hub: a persistent session that resubscribes on every (re)connect."""

    def __init__(self, port: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.retained: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="hub-test", clean_session=False, protocol=mqtt.MQTTv311
        )
        # Fast reconnect so the hub is back before the agent's jittered backoff ends.
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self.connected.wait(10), "test subscriber could not connect"

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"{TOPICS.base}/#", qos=1)
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            if "/events/" in msg.topic:
                self.events.append(json.loads(msg.payload))
            else:
                self.retained[msg.topic] = msg.payload

    def event_ids(self) -> set[str]:
        with self.lock:
            return {e["event_id"] for e in self.events}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker: MosquittoBroker) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port)
    try:
        yield sub
    finally:
        sub.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_thread_publisher(
    db: Path, broker: MosquittoBroker, mqtt_version: int = 4
) -> tuple[Publisher, Store, threading.Thread]:
    store = Store.open(db)
    options = PublisherOptions(
        host="127.0.0.1", port=broker.port, backoff=Backoff(0.3, 1.0), mqtt_version=mqtt_version
    )
    publisher = Publisher(store, TOPICS, options)
    thread = threading.Thread(target=publisher.run, daemon=True)
    thread.start()
    return publisher, store, thread


def spawn_agent(db: Path, broker: MosquittoBroker) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "edge_agent", "run", "--db", str(db), "--broker", broker.url),
            *("--site", TOPICS.site, "--kiosk", TOPICS.kiosk),
            *("--backoff-initial", "0.3", "--backoff-max", "1"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def add_events(store: Store, count: int, start: int = 0) -> list[str]:
    return [store.outbox.add("audit", {"n": start + i}).event_id for i in range(count)]


def assert_complete(sub: Subscriber, expected: set[str], store: Store) -> None:
    assert expected <= sub.event_ids()
    with sub.lock:
        seqs = sorted({e["seq"] for e in sub.events})
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap in seq after de-duplication"
    assert store.outbox.backlog() == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mqtt_version", [4, 5], ids=["mqtt311", "mqtt5"])
def test_events_before_and_during_run_arrive_and_are_marked(
    tmp_path: Path, broker: MosquittoBroker, subscriber: Subscriber, mqtt_version: int
) -> None:
    db = tmp_path / "kiosk.sqlite3"
    with Store.open(db) as kiosk:
        expected = set(add_events(kiosk, 50))
        publisher, agent_store, thread = start_thread_publisher(db, broker, mqtt_version)
        try:
            expected |= set(add_events(kiosk, 50, start=50))
            wait_for(lambda: expected <= subscriber.event_ids(), 20, "all events at the subscriber")
            wait_for(lambda: kiosk.outbox.backlog() == 0, 10, "backlog 0")
        finally:
            publisher.stop()
            thread.join(10)
            agent_store.close()
        assert_complete(subscriber, expected, kiosk)
        first = next(e for e in subscriber.events if e["seq"] == 1)
        stored = kiosk.outbox.get(1)
        assert stored is not None
        assert json.loads(event_message(stored)) == first
        assert first["type"] == "audit" and first["payload"] == {"n": 0}
        # Clean stop: "offline" replaces "online" before the disconnect.
        wait_for(
            lambda: subscriber.retained.get(TOPICS.availability) == b"offline", 5, "availability offline"
        )


@pytest.mark.timeout(60)
def test_broker_restarted_twice_while_filling_loses_nothing(
    tmp_path: Path, broker: MosquittoBroker, subscriber: Subscriber
) -> None:
    db = tmp_path / "kiosk.sqlite3"
    with Store.open(db) as kiosk:
        publisher, agent_store, thread = start_thread_publisher(db, broker)
        expected: set[str] = set()
        try:
            for batch in range(6):
                expected |= set(add_events(kiosk, 50, start=batch * 50))
                if batch in (1, 3):
                    before = publisher.connections
                    broker.restart()
                    # The hub's link comes back on its own; wait so the test checks the agent, not the hub.
                    wait_for(subscriber.connected.is_set, 10, "subscriber reconnected")
                    # Two separate outages, not one merged: the agent must be back before the next crash.
                    wait_for(lambda before=before: publisher.connections > before, 20, "agent reconnected")
                time.sleep(0.1)
            wait_for(lambda: kiosk.outbox.backlog() == 0, 30, "backlog 0")
            wait_for(lambda: expected <= subscriber.event_ids(), 10, "all events at the subscriber")
        finally:
            publisher.stop()
            thread.join(10)
            agent_store.close()
        assert len(expected) == 300
        assert publisher.connections >= 3
        assert_complete(subscriber, expected, kiosk)


@pytest.mark.timeout(60)
def test_agent_kill9_mid_drain_then_restart_loses_nothing(
    tmp_path: Path, broker: MosquittoBroker, subscriber: Subscriber
) -> None:
    db = tmp_path / "kiosk.sqlite3"
    with Store.open(db) as kiosk:
        expected = set(add_events(kiosk, 3000))
        agent = spawn_agent(db, broker)
        try:
            wait_for(lambda: len(subscriber.event_ids()) > 200, 20, "drain under way")
            agent.kill()
            agent.wait(5)
            assert kiosk.outbox.backlog() > 0, "drain finished before the kill; the test proves nothing"
            agent = spawn_agent(db, broker)
            wait_for(lambda: kiosk.outbox.backlog() == 0, 40, "backlog 0 after restart")
            wait_for(lambda: expected <= subscriber.event_ids(), 10, "all events at the subscriber")
        finally:
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(10) == 0
        assert_complete(subscriber, expected, kiosk)


@pytest.mark.timeout(60)
def test_availability_and_state_retained_and_lwt_on_kill9(
    tmp_path: Path, broker: MosquittoBroker, subscriber: Subscriber
) -> None:
    db = tmp_path / "kiosk.sqlite3"
    with Store.open(db) as kiosk:
        add_events(kiosk, 3)
    agent = spawn_agent(db, broker)
    try:
        wait_for(lambda: subscriber.retained.get(TOPICS.availability) == b"online", 20, "online")
        wait_for(lambda: TOPICS.state in subscriber.retained, 5, "state")
        state = json.loads(subscriber.retained[TOPICS.state])
        # No kiosk process has ever reported: the hub must not see a healthy lane.
        assert state["mode"] == "out_of_service" and not state["kiosk_running"]
        assert state["backlog"] in (0, 3)
        assert {"software", "datasets", "last_transaction", "devices"} <= state.keys()
    finally:
        agent.kill()
        agent.wait(5)
    wait_for(lambda: subscriber.retained.get(TOPICS.availability) == b"offline", 10, "LWT offline")

    # A late subscriber sees the retained values too: they are on the broker, not only in our feed.
    late = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="late")
    seen: dict[str, bytes] = {}
    late.on_connect = lambda c, *_: c.subscribe(f"{TOPICS.base}/#", qos=1)
    late.on_message = lambda _c, _u, m: seen.__setitem__(m.topic, m.payload)
    late.connect("127.0.0.1", broker.port)
    late.loop_start()
    try:
        wait_for(lambda: TOPICS.availability in seen and TOPICS.state in seen, 5, "retained")
        assert seen[TOPICS.availability] == b"offline"
    finally:
        late.disconnect()
        late.loop_stop()


def test_topics_reject_wildcards() -> None:
    assert TOPICS.event("transaction") == "gerbang/v1/soetta-t3/gate-07/events/transaction"
    with pytest.raises(ValueError):
        Topics("site/#", "k")
