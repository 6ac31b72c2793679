"""The hub's acknowledgement watermark: the only thing that lets the agent forget an event.

A PUBACK means the broker has the event for now, not that it is stored: mosquitto loses acknowledged
messages across restarts. The hub therefore publishes, per kiosk, the highest seq up to which it has
durably stored every event (retained, QoS 1, signed with the hub's command key), and outbox compaction
deletes only at or below it. A forged or mistaken watermark would make the kiosk delete events the
hub never got, so it is accepted only with a valid signature, for this kiosk, on this kiosk's own
topic, never above the kiosk's own last seq, and it never goes backwards.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract.commands import ACK_FIELDS
from contract.signing import signature_valid
from contract.topics import Topics
from edge_agent.publisher import Outgoing
from kiosk.store import Store

log = logging.getLogger(__name__)

META_KEY = "hub_ack_seq"


def hub_ack_seq(store: Store) -> int:
    """The watermark in force (0 until the hub has acknowledged anything)."""
    raw = store.meta.get(META_KEY)
    return int(raw) if raw else 0


def _seq(body: object) -> int | None:
    """The watermark of a well-formed message, else None (the signature is checked separately)."""
    if not isinstance(body, dict) or set(body) != ACK_FIELDS:
        return None
    seq, issued = body["seq"], body["issued_at"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or not isinstance(issued, str):
        return None
    try:
        datetime.fromisoformat(issued)
    except ValueError:
        return None
    return seq


class AckHandler:
    """Subscribes to this kiosk's ack topic and keeps the highest valid watermark in store meta."""

    def __init__(self, store: Store, topics: Topics, hub_key: Ed25519PublicKey) -> None:
        self.store = store
        self.topics = topics
        self.hub_key = hub_key

    def subscriptions(self) -> list[str]:
        return [self.topics.ack]

    def handle(self, topic: str, payload: bytes, retained: bool) -> list[Outgoing]:
        # Retained is the normal case here: the newest watermark waits for the agent at the broker.
        self.accept(topic, payload)
        return []

    def accept(self, topic: str, payload: bytes) -> int | None:
        """The new watermark if this message raised it, else None (and why is logged)."""
        if topic != self.topics.ack or not payload:
            return None
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        seq = _seq(body)
        if seq is None or not signature_valid(self.hub_key, body):
            log.warning("ignored an acknowledgement watermark that is malformed or not signed by the hub")
            return None
        if body["target"] != {"site": self.topics.site, "kiosk": self.topics.kiosk}:
            log.warning("ignored an acknowledgement watermark for another kiosk")
            return None
        last = self.store.outbox.last_seq()
        if seq > last:
            # The hub cannot have stored what was never written: a hub bug or a database mix-up.
            log.warning("ignored an acknowledgement watermark %d above the last seq %d", seq, last)
            return None
        if seq <= hub_ack_seq(self.store):
            return None
        self.store.meta.set(META_KEY, str(seq))
        return seq
