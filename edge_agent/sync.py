"""Reference-data bundles from the hub (placeholder: being written)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.publisher import Outgoing
from edge_agent.topics import Topics
from kiosk.store import Store


class SyncHandler:
    def __init__(self, store: Store, topics: Topics, hub_key: Ed25519PublicKey) -> None:
        self.store = store
        self.topics = topics
        self.hub_key = hub_key

    def subscriptions(self) -> list[str]:
        return [self.topics.sync_filter]

    def handle(self, topic: str, payload: bytes, retained: bool) -> Sequence[Outgoing]:
        raise NotImplementedError
