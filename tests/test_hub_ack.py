"""The acknowledgement watermark and the hub's ledger, without a broker: what may and may not be forgotten."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import schema
from contract.signing import load_public_key
from contract.topics import Topics
from edge_agent.ack import AckHandler, hub_ack_seq
from edge_agent.agent import compact_outbox
from edge_agent.state import StateReporter
from hub.consumer import EventConsumer
from hub.ledger import EventLedger
from hub.signer import sign_ack
from kiosk.store import Store

TOPICS = Topics("soetta-t3", "gate-07")
TARGET = {"site": TOPICS.site, "kiosk": TOPICS.kiosk}


def ack(private_key: Ed25519PrivateKey, seq: int, target: dict[str, str] = TARGET) -> bytes:
    body = sign_ack(private_key, target, seq)
    schema.validate(TOPICS.ack, json.dumps(body))
    return json.dumps(body).encode()


def test_only_a_signed_watermark_for_this_kiosk_within_its_seqs_is_kept(
    store: Store, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private_key, public_path = keys
    handler = AckHandler(store, TOPICS, load_public_key(public_path))
    assert handler.subscriptions() == [TOPICS.ack]
    for n in range(5):
        store.outbox.add("audit", {"n": n})

    assert handler.accept(TOPICS.ack, ack(private_key, 3)) == 3
    assert hub_ack_seq(store) == 3
    # Never backwards: an old retained watermark replayed changes nothing.
    assert handler.accept(TOPICS.ack, ack(private_key, 2)) is None
    # Never above what the kiosk wrote.
    assert handler.accept(TOPICS.ack, ack(private_key, 6)) is None
    # Another kiosk's watermark, another key's, a tampered one, a foreign topic, garbage, an empty delete.
    assert handler.accept(TOPICS.ack, ack(private_key, 5, {"site": "soetta-t3", "kiosk": "gate-08"})) is None
    assert handler.accept(TOPICS.ack, ack(Ed25519PrivateKey.generate(), 5)) is None
    tampered = json.loads(ack(private_key, 4))
    tampered["seq"] = 5
    assert handler.accept(TOPICS.ack, json.dumps(tampered).encode()) is None
    assert handler.accept(Topics("soetta-t3", "gate-08").ack, ack(private_key, 5)) is None
    assert handler.accept(TOPICS.ack, b"{") is None
    assert handler.accept(TOPICS.ack, b"") is None
    assert hub_ack_seq(store) == 3

    assert handler.handle(TOPICS.ack, ack(private_key, 5), retained=True) == []
    assert hub_ack_seq(store) == 5
    state = StateReporter(store, TOPICS).state()
    assert (state["last_seq"], state["hub_ack_seq"], state["unacked"]) == (5, 5, 0)


def test_compaction_deletes_only_at_or_below_the_watermark_never_by_age_alone(
    store: Store, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private_key, public_path = keys
    events = [store.outbox.add("audit", {"n": n}) for n in range(6)]
    store.outbox.mark_delivered(e.seq for e in events[:5])
    # Delivered (PUBACKed) and past retention, but the hub has confirmed nothing: all kept.
    compact_outbox(store, timedelta(0))
    assert all(store.outbox.get(e.seq) is not None for e in events)

    AckHandler(store, TOPICS, load_public_key(public_path)).accept(
        TOPICS.ack, ack(private_key, events[2].seq)
    )
    state = StateReporter(store, TOPICS).state()
    assert (state["hub_ack_seq"], state["unacked"]) == (events[2].seq, 3)
    # Retention stays an extra condition: acknowledged but young events stay.
    compact_outbox(store, timedelta(days=30))
    assert all(store.outbox.get(e.seq) is not None for e in events)
    compact_outbox(store, timedelta(0))
    assert [e.seq for e in events if store.outbox.get(e.seq) is not None] == [e.seq for e in events[3:]]


def event(seq: int) -> bytes:
    return json.dumps({"event_id": f"e{seq}", "seq": seq}).encode()


def test_ledger_deduplicates_and_keeps_gaps_across_a_consumer_restart(tmp_path: Path) -> None:
    topic, state_topic = "gerbang/v1/s/k/events/audit", "gerbang/v1/s/k/state"
    with EventLedger.open(tmp_path / "hub.sqlite3") as ledger:
        consumer = EventConsumer(ledger=ledger)
        assert [consumer.ingest(topic, event(s)) for s in (2, 3, 3, 6)] == [True, True, False, True]
        consumer.ingest_state(state_topic, b'{"last_seq": 8}')
        # With a ledger the whole history is wanted: seq 1 is missing too.
        assert consumer.gaps("s", "k") == [(1, 1), (4, 5), (7, 8)]
        assert consumer.watermark("s", "k") == 0
        assert consumer.events == [] and consumer.duplicates == 1

    with EventLedger.open(tmp_path / "hub.sqlite3") as ledger:
        restarted = EventConsumer(ledger=ledger)
        assert restarted.gaps("s", "k") == [(1, 1), (4, 5), (7, 8)]
        assert not restarted.ingest(topic, event(2)), "a duplicate after the restart"
        for seq in (1, 4, 5):
            assert restarted.ingest(topic, event(seq))
        assert restarted.watermark("s", "k") == 6
        assert ledger.report() == {"s/k": {"unique_events": 6, "last_contiguous_seq": 6, "gaps": [[7, 8]]}}


@pytest.mark.parametrize("seqs", [[], [1, 2, 3]])
def test_report_of_a_kiosk_known_only_by_its_state(tmp_path: Path, seqs: list[int]) -> None:
    with EventLedger.open(tmp_path / "hub.sqlite3") as ledger:
        consumer = EventConsumer(ledger=ledger)
        for seq in seqs:
            consumer.ingest("gerbang/v1/s/k/events/audit", event(seq))
        consumer.ingest_state("gerbang/v1/s/k/state", b'{"last_seq": 5}')
        low = len(seqs) + 1
        assert ledger.report() == {
            "s/k": {"unique_events": len(seqs), "last_contiguous_seq": low - 1, "gaps": [[low, 5]]}
        }
