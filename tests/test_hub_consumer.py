"""The hub's de-duplicating consumer against a real broker and the real agent."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from common.backoff import Backoff
from contract.topics import Topics
from edge_agent.publisher import Publisher, PublisherOptions, event_message
from hub.consumer import EventConsumer
from kiosk.store import Store
from tests.mqtt_broker import MosquittoBroker
from tests.test_edge_agent import wait_for

TOPICS = Topics("soetta-t3", "gate-07")


@pytest.mark.timeout(60)
def test_consumer_deduplicates_resent_events_and_reports_gaps(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path)
    broker.start()
    consumer = EventConsumer()
    consumer.start("127.0.0.1", broker.port)
    assert consumer.connected.wait(10)
    store = Store.open(tmp_path / "kiosk.sqlite3")
    try:
        events = [store.outbox.add("audit", {"n": i}) for i in range(5)]
        publisher = Publisher(
            store, TOPICS, PublisherOptions(host="127.0.0.1", port=broker.port, backoff=Backoff(0.3, 1.0))
        )
        thread = threading.Thread(target=publisher.run, daemon=True)
        thread.start()
        wait_for(lambda: len(consumer.events) == 5, 10, "five events at the hub")
        publisher.stop()
        thread.join(10)

        # Re-send everything, as the agent does after a lost PUBACK, then a later event with a hole before it.
        later = [store.outbox.add("audit", {"n": i}) for i in range(5, 8)]
        raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="resender")
        raw.connect("127.0.0.1", broker.port)
        raw.loop_start()
        for event in [*events, later[2]]:
            raw.publish(TOPICS.event("audit"), event_message(event), qos=1).wait_for_publish(5)
        wait_for(lambda: consumer.duplicates == 5 and len(consumer.events) == 6, 10, "duplicates counted")
        first, last = events[0].seq, later[2].seq
        assert consumer.last_seq(TOPICS.site, TOPICS.kiosk) == last
        assert consumer.gaps(TOPICS.site, TOPICS.kiosk) == [(last - 2, last - 1)]

        # The missing events arrive late: the gap closes.
        for event in later[:2]:
            raw.publish(TOPICS.event("audit"), event_message(event), qos=1).wait_for_publish(5)
        wait_for(lambda: len(consumer.events) == 8, 10, "late events")
        assert consumer.gaps(TOPICS.site, TOPICS.kiosk) == []
        assert sorted(e["seq"] for e in consumer.events) == list(range(first, last + 1))
        raw.disconnect()
        raw.loop_stop()
    finally:
        consumer.stop()
        store.close()
        broker.stop()


def test_seen_set_is_bounded() -> None:
    consumer = EventConsumer(max_seen=3)
    for seq in range(1, 6):
        assert consumer.ingest("gerbang/v1/s/k/events/audit", f'{{"event_id":"e{seq}","seq":{seq}}}'.encode())
    assert len(consumer._seen) == 3
    assert not consumer.ingest("gerbang/v1/s/k/events/audit", b'{"event_id":"e5","seq":5}')
    assert not consumer.ingest("gerbang/v1/s/k/events/audit", b"garbage")
