"""Zero loss under faults, end to end: kiosk process -> SQLite outbox -> agent process -> mosquitto -> hub.

A broker killed with SIGKILL loses what it had acknowledged to the agent but not yet delivered to the
hub; the agent has marked those events delivered and cannot know. The hub notices the hole in the
per-kiosk ``seq`` (or a tail missing against the retained state's ``last_seq``) and asks for the range
again with a signed ``resend`` command. These tests make that loss happen on purpose and check that
every event still arrives exactly once after de-duplication.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from contract import schema
from contract.signing import load_public_key
from contract.topics import Topics
from edge_agent.commands import CommandHandler
from hub.consumer import EventConsumer
from hub.signer import sign_command
from kiosk.store import Store
from tests.mqtt_broker import MosquittoBroker, site_broker_limits
from tests.test_edge_agent import wait_for

ROOT = Path(__file__).resolve().parent.parent
TOPICS = Topics("soetta-t3", "gate-07")
TARGET = {"site": TOPICS.site, "kiosk": TOPICS.kiosk}
# paho's own reconnect for the hub (1 s -> 30 s by default) is shortened to keep the tests quick; the
# order that makes losses certain (the hub back only after the agent) is set by the tests themselves.
HUB_RECONNECT = (0.05, 0.5)


def spawn_agent(db: Path, broker: MosquittoBroker, hub_key: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "edge_agent", "run", "--db", str(db), "--broker", broker.url),
            *("--site", TOPICS.site, "--kiosk", TOPICS.kiosk, "--hub-key", str(hub_key)),
            *("--backoff-initial", "0.1", "--backoff-max", "0.5"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def stop_agent(agent: subprocess.Popen[bytes]) -> int:
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            return agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(5)
            raise
    return agent.returncode


def start_hub(consumer: EventConsumer, broker: MosquittoBroker) -> None:
    consumer.start("127.0.0.1", broker.port, "hub-faults", reconnect_delay=HUB_RECONNECT, recover_every_s=0.2)
    assert consumer.connected.wait(10), "hub consumer could not connect"


def outbox_ids(db: Path) -> dict[str, str]:
    """event_id -> type of every row, read on a connection of our own (the store is someone else's)."""
    with sqlite3.connect(db) as conn:
        return {str(e): str(t) for e, t in conn.execute("SELECT event_id, type FROM outbox")}


def hub_ids(consumer: EventConsumer) -> list[str]:
    with consumer.lock:
        return [str(e["event_id"]) for e in consumer.events]


def assert_exactly_once(consumer: EventConsumer, db: Path, store: Store) -> None:
    # Every event, state and cmd_result the hub took in matched its JSON Schema (contract/schemas).
    assert consumer.invalid == []
    received = hub_ids(consumer)
    assert len(received) == len(set(received)), "the consumer kept a duplicate"
    assert set(received) == set(outbox_ids(db)), "hub and kiosk outbox differ"
    assert consumer.gaps(TOPICS.site, TOPICS.kiosk) == []
    assert consumer.last_seq(TOPICS.site, TOPICS.kiosk) == store.outbox.last_seq()
    with consumer.lock:
        seqs = sorted(int(e["seq"]) for e in consumer.events)
    assert seqs == list(range(1, store.outbox.last_seq() + 1)), "gap in seq"
    assert store.outbox.backlog() == 0


def add_feedback(store: Store, count: int) -> None:
    # Events that keep to the feedback schema, so the hub's validation passes them.
    for i in range(count):
        store.outbox.add("feedback", {"transaction_id": None, "rating": 1 + i % 5})


def lose_while_hub_is_away(
    consumer: EventConsumer, broker: MosquittoBroker, store: Store, count: int
) -> None:
    """Events acknowledged by the broker and queued for the (absent) hub, then the broker crashes."""
    consumer.stop()
    add_feedback(store, count)
    # PUBACKed: the agent has marked them delivered and will never send them on its own again.
    wait_for(lambda: store.outbox.backlog() == 0, 20, "agent drained the batch")
    broker.restart()


# ---------------------------------------------------------------------------------- recovery, on purpose


@pytest.mark.timeout(120)
def test_hub_recovers_events_a_crashed_broker_had_acknowledged(
    tmp_path: Path, broker: MosquittoBroker, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private_key, public_path = keys
    db = tmp_path / "kiosk.sqlite3"
    consumer = EventConsumer(
        signing_key=private_key, recover_after_s=1.0, retry_s=4.0, validate=schema.validate
    )
    consumer.watch(TOPICS.site, TOPICS.kiosk, next_seq=1)
    start_hub(consumer, broker)
    with Store.open(db) as store:
        agent = spawn_agent(db, broker, public_path)
        try:
            add_feedback(store, 30)
            wait_for(lambda: len(hub_ids(consumer)) >= 30, 20, "first batch at the hub")

            # 1. A lost tail: nothing follows it, only the retained state's last_seq reveals it.
            lose_while_hub_is_away(consumer, broker, store, 40)
            start_hub(consumer, broker)
            wait_for(lambda: set(hub_ids(consumer)) >= set(outbox_ids(db)), 30, "lost tail re-sent")
            assert consumer.requeued >= 40, consumer.resend_results

            # 2. A hole in the middle: later events arrive first and show it.
            lose_while_hub_is_away(consumer, broker, store, 20)
            start_hub(consumer, broker)
            add_feedback(store, 5)
            wait_for(lambda: set(hub_ids(consumer)) >= set(outbox_ids(db)), 30, "lost middle re-sent")
            wait_for(lambda: store.outbox.backlog() == 0, 20, "backlog 0")
            wait_for(lambda: consumer.gaps(TOPICS.site, TOPICS.kiosk) == [], 20, "no gaps")
            assert consumer.requeued >= 60
            assert consumer.unrecoverable == 0
            assert_exactly_once(consumer, db, store)

            # 3. Lost AND already compacted (as if a watermark had covered them: a hub that lost its
            # database): the kiosk says so, the hub writes the hole off.
            first_lost = store.outbox.last_seq() + 1
            lose_while_hub_is_away(consumer, broker, store, 10)
            horizon = datetime.now(UTC) + timedelta(seconds=1)
            assert store.outbox.compact(acked_through=store.outbox.last_seq(), delivered_before=horizon) > 0
            start_hub(consumer, broker)
            wait_for(lambda: consumer.unrecoverable == 10, 30, "compacted hole written off")
            answers = [r["result"] for r in consumer.resend_results.values() if r["status"] == "accepted"]
            gone = next(a for a in answers if a["from_seq"] == first_lost)
            assert gone["compacted"] == 10 and gone["requeued"] == 0 and gone["pending"] == 0
            assert consumer.gaps(TOPICS.site, TOPICS.kiosk) == []
            assert consumer.invalid == []
        finally:
            consumer.stop()
            assert stop_agent(agent) == 0
        # Every resend the agent accepted is in the audit ledger.
        audits = [
            json.loads(p)
            for (p,) in sqlite3.connect(db).execute("SELECT payload FROM outbox WHERE type = 'audit'")
        ]
        accepted = {a["command_id"] for a in audits if a.get("audit") == "command_accepted"}
        assert {r.command_id for r in consumer.resends_sent} & accepted
        print(
            f"\nrecovery: {len(consumer.resends_sent)} resend commands, {consumer.requeued} events re-sent, "
            f"{consumer.duplicates} duplicates dropped, {consumer.unrecoverable} written off (compacted)"
        )


def test_resend_is_bounded_validated_and_reports_what_it_cannot_send(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private_key, public_path = keys
    with Store.open(tmp_path / "kiosk.sqlite3") as store:
        add_feedback(store, 20)
        store.outbox.mark_delivered(range(1, 16))  # 16..20 still pending
        rewound: list[int] = []
        handler = CommandHandler(store, TOPICS, load_public_key(public_path))
        handler.on_resend.append(rewound.append)

        def resend(args: dict[str, Any]) -> Any:
            body = sign_command(private_key, "resend", TARGET, args)
            result = handler.process(TOPICS.command("resend"), json.dumps(body).encode())
            # What the hub sends and the agent answers both keep to the published contract.
            if result.status == "accepted":
                schema.validate(TOPICS.command("resend"), json.dumps(body).encode())
            schema.validate(TOPICS.command_result(body["command_id"]), result.message())
            return result

        result = resend({"from_seq": 11, "to_seq": 25})
        assert result.status == "accepted"
        assert result.result == {
            "from_seq": 11,
            "to_seq": 25,
            "requeued": 5,
            "pending": 5,
            "compacted": 0,
            "not_written": 5,
        }
        assert rewound == [11]
        # 11..20 go out again, then 21: the audit event recording the accepted command.
        assert [e.seq for e in store.outbox.pending(100)] == list(range(11, 22))

        store.outbox.mark_delivered(range(1, 21))
        horizon = datetime.now(UTC) + timedelta(seconds=1)
        assert store.outbox.compact(acked_through=20, delivered_before=horizon) == 20
        assert store.outbox.last_seq() == 20 + 1  # the audit event of the accepted resend
        gone = resend({"from_seq": 1, "to_seq": 10})
        assert gone.result is not None and gone.result["compacted"] == 10 and gone.result["requeued"] == 0

        for bad in (
            {"from_seq": 1, "to_seq": 10_001},  # wider than one page: the hub splits big holes
            {"from_seq": 5, "to_seq": 4},
            {"from_seq": 0, "to_seq": 4},
            {"from_seq": True, "to_seq": 4},
            {"from_seq": 1},
            {"from_seq": 1, "to_seq": 2, "extra": 1},
        ):
            refused = resend(bad)
            assert (refused.status, refused.reason) == ("rejected", "invalid_args"), bad
        alerts = [json.loads(e.payload) for e in store.outbox.pending(100) if str(e.type) == "alert"]
        assert sum(a["reason"] == "invalid_args" for a in alerts) == 6


# ---------------------------------------------------------------------------------- the full system


class Pacer:
    """Runs the kiosk process in short slices (SIGCONT/SIGSTOP), as on a starved CPU.

    A 500-traveller headless run takes about a second of wall time (simulated device delays advance a
    simulated clock, not the real one); slowed to a fraction of its speed it lasts long enough for
    three broker crashes, each with a full reconnect, to happen while it is still writing events.
    While a crash is being handled the kiosk goes slower still (``crawl``) but never stops, so events
    keep arriving in the outbox during the outage. Stops stay short: the kiosk may hold the SQLite
    write lock when stopped, and the agent must never wait on it near its busy timeout.
    """

    def __init__(self, proc: subprocess.Popen[bytes], run_s: float = 0.005, stop_s: float = 0.045) -> None:
        self.proc = proc
        self.slices = (run_s, stop_s)
        self.crawling = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _signal(self, signum: int) -> bool:
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(signum)
        return True

    def _loop(self) -> None:
        while not self._done.is_set():
            run_s, stop_s = (0.002, 0.098) if self.crawling.is_set() else self.slices
            if not self._signal(signal.SIGCONT):
                return
            time.sleep(run_s)
            if not self._signal(signal.SIGSTOP):
                return
            time.sleep(stop_s)
        self._signal(signal.SIGCONT)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._signal(signal.SIGCONT)


def spawn_paced_kiosk(
    db: Path, travellers: int, seed: int, log: Path
) -> tuple[subprocess.Popen[bytes], Pacer]:
    """A headless simulated kiosk writing ``travellers`` transactions into ``db``, slowed by a Pacer."""
    with log.open("wb") as stderr:
        kiosk = subprocess.Popen(
            [
                *(sys.executable, "-m", "kiosk", "run", "--headless", "--simulate"),
                *("--travellers", str(travellers), "--seed", str(seed), "--db", str(db)),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    return kiosk, Pacer(kiosk)


def transactions_written(db: Path) -> int:
    with sqlite3.connect(db, timeout=5) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox WHERE type = 'transaction'").fetchone()[0])


@pytest.mark.soak
@pytest.mark.timeout(600)
def test_500_travellers_broker_killed_three_times_every_transaction_arrives_exactly_once(
    tmp_path: Path, broker: MosquittoBroker, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private_key, public_path = keys
    db = tmp_path / "kiosk.sqlite3"
    travellers = 500
    consumer = EventConsumer(
        signing_key=private_key, recover_after_s=2.0, retry_s=6.0, validate=schema.validate
    )
    consumer.watch(TOPICS.site, TOPICS.kiosk, next_seq=1)
    start_hub(consumer, broker)
    # Created up front, so the kiosk and the agent starting together do not both migrate a new file.
    Store.open(db).close()
    agent = spawn_agent(db, broker, public_path)
    kiosk, pacer = spawn_paced_kiosk(db, travellers, 6, tmp_path / "kiosk.log")
    kills: list[int] = []
    try:
        with Store.open(db) as store:
            for threshold in (100, 200, 300):
                wait_for(lambda t=threshold: transactions_written(db) >= t, 120, f"{threshold} transactions")
                written = transactions_written(db)
                assert kiosk.poll() is None and written < travellers, "the run ended before the crash"
                kills.append(written)
                states_before = consumer.states_received
                pacer.crawling.set()
                # The crash, then the hub comes back only after the agent has published into a broker
                # that has no hub session: those events are PUBACKed and lost, for certain.
                broker.kill()
                consumer.stop()
                broker.start()
                last = store.outbox.last_seq()
                wait_for(
                    lambda last=last: store.outbox.last_seq() > last and store.outbox.backlog() == 0,
                    60,
                    "agent back and delivering while the hub is away",
                )
                start_hub(consumer, broker)
                wait_for(lambda s=states_before: consumer.states_received > s, 30, "hub back, state seen")
                pacer.crawling.clear()
            summary_out, _ = kiosk.communicate(timeout=300)
            assert kiosk.returncode == 0, (tmp_path / "kiosk.log").read_text(errors="replace")[-3000:]
            summary = json.loads(summary_out)
            assert summary["travellers"] == travellers

            wait_for(lambda: store.outbox.backlog() == 0, 60, "backlog 0")
            wait_for(lambda: set(hub_ids(consumer)) >= set(outbox_ids(db)), 90, "every event at the hub")
            wait_for(lambda: consumer.gaps(TOPICS.site, TOPICS.kiosk) == [], 30, "no open gaps")
            # Late re-sends and their audit events settle; then nothing is pending anywhere.
            wait_for(
                lambda: store.outbox.backlog() == 0 and set(hub_ids(consumer)) == set(outbox_ids(db)),
                30,
                "quiet",
            )
            outbox = outbox_ids(db)
            transactions = {e for e, t in outbox.items() if t == "transaction"}
            assert len(transactions) == travellers
            received = hub_ids(consumer)
            assert transactions <= set(received)
            assert_exactly_once(consumer, db, store)
            # The hard path really ran: events were lost by the broker and came back by resend.
            assert consumer.requeued > 0 and consumer.unrecoverable == 0
            print(
                f"\nfleet faults: {travellers} travellers, {len(outbox)} events ({len(transactions)} "
                f"transactions), broker SIGKILLed at {kills} transactions; {len(consumer.resends_sent)} "
                f"resend commands re-sent {consumer.requeued} events; {consumer.duplicates} duplicates "
                f"dropped by event_id; gaps {consumer.gaps(TOPICS.site, TOPICS.kiosk)}"
            )
    finally:
        pacer.close()
        if kiosk.poll() is None:
            kiosk.kill()
            kiosk.wait(10)
        consumer.stop()
        assert stop_agent(agent) == 0


# ---------------------------------------------------------------------------------- slow subscriber


class SlowHub:
    """A hub subscriber that spends ``delay_s`` on every message (a slow database insert, say)."""

    def __init__(self, port: int, delay_s: float) -> None:
        self.delay_s = delay_s
        self.ids: set[str] = set()
        self.count = 0
        self.last_at = time.monotonic()
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="slow-hub", clean_session=False, protocol=mqtt.MQTTv311
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10)

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"{TOPICS.base}/events/#", qos=1)
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # Blocking here is the point: paho acknowledges only after the callback returns.
        time.sleep(self.delay_s)
        with self.lock:
            self.ids.add(json.loads(msg.payload)["event_id"])
            self.count += 1
            self.last_at = time.monotonic()

    def received(self) -> int:
        with self.lock:
            return len(self.ids)

    def idle_for(self) -> float:
        with self.lock:
            return time.monotonic() - self.last_at

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# Per message: 200/s is far below the agent's drain (~10,000/s), which is what the test is about.
SLOW_HUB_S = 0.005


def drain_with_slow_hub(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path], extra: tuple[str, ...], events: int
) -> tuple[MosquittoBroker, SlowHub, Store, subprocess.Popen[bytes], float]:
    broker = MosquittoBroker(tmp_path, extra=extra)
    broker.start()
    hub = SlowHub(broker.port, delay_s=SLOW_HUB_S)
    store = Store.open(tmp_path / "kiosk.sqlite3")
    for i in range(events):
        store.outbox.add(
            "transaction", {"n": i, "decision": "OPEN", "reasons": [], "stage_ms": {"face": 812}}
        )
    started = time.monotonic()
    agent = spawn_agent(store.path, broker, keys[1])
    wait_for(lambda: store.outbox.backlog() == 0, 60, "agent drained its backlog")
    return broker, hub, store, agent, time.monotonic() - started


@pytest.mark.soak
@pytest.mark.timeout(300)
@pytest.mark.parametrize("lossless", [False, True], ids=["mosquitto-default-1000", "deploy-site-broker"])
def test_slow_subscriber_does_not_slow_the_drain(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path], lossless: bool
) -> None:
    """The kiosk's drain is decoupled from the hub's speed; the broker's queue limit decides the rest.

    Mosquitto's default ``max_queued_messages 1000`` drops QoS 1 messages for a subscriber more than
    1000 behind, even a connected one. The site broker (deploy/mosquitto/mosquitto.conf) raises it
    above the largest burst a hub consumer may lag behind; the seq-gap resend is the backstop.
    """
    extra = site_broker_limits() if lossless else ()
    events = 2000 if lossless else 1500
    broker, hub, store, agent, drain_s = drain_with_slow_hub(tmp_path, keys, extra, events)
    try:
        # Drained while the slow hub has seen only a small part: the agent never waits for subscribers.
        assert hub.received() < events / 2, "drain finished no faster than the slow subscriber"
        print(
            f"\ndrain of {events} events with a {SLOW_HUB_S * 1000:.0f} ms/message subscriber: "
            f"{drain_s:.2f} s "
            f"(agent start included); subscriber had {hub.received()} at that moment"
        )
        if lossless:
            wait_for(
                lambda: hub.received() == events, events * SLOW_HUB_S * 4 + 30, "every event at the slow hub"
            )
        else:
            wait_for(lambda: hub.idle_for() > 3.0, events * SLOW_HUB_S * 4 + 30, "slow hub idle")
            assert hub.received() < events, "the default queue limit was expected to drop messages"
            assert "dropped" in broker.log.read_text(errors="replace")
            print(f"default max_queued_messages: the slow subscriber got {hub.received()} of {events}")
    finally:
        stop_agent(agent)
        hub.close()
        store.close()
        broker.stop()
