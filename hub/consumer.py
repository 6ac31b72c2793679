"""A de-duplicating event consumer: the hub side of the agent's at-least-once delivery."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

EVENTS_FILTER = "gerbang/v1/+/+/events/#"


@dataclass
class KioskTrack:
    last_seq: int = 0
    # (first missing seq, last missing seq) ranges; filled in later if re-sent events arrive.
    gaps: list[tuple[int, int]] = field(default_factory=list)


class EventConsumer:
    """Pure bookkeeping (``ingest``) plus an optional MQTT loop (``start``/``stop``)."""

    def __init__(self, max_seen: int = 100_000) -> None:
        self.max_seen = max_seen
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.duplicates = 0
        self.kiosks: dict[tuple[str, str], KioskTrack] = {}
        # Bounded LRU of event ids: memory must not grow with fleet uptime.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._client: mqtt.Client | None = None
        self.connected = threading.Event()

    # ------------------------------------------------------------------ bookkeeping
    def ingest(self, topic: str, payload: bytes) -> bool:
        """Returns True for a new event, False for a duplicate or an unparseable message."""
        parts = topic.split("/")
        try:
            event = json.loads(payload)
            event_id, seq = str(event["event_id"]), int(event["seq"])
        except (ValueError, KeyError, TypeError):
            return False
        if len(parts) < 6:
            return False
        key = (parts[2], parts[3])
        with self.lock:
            if event_id in self._seen:
                self._seen.move_to_end(event_id)
                self.duplicates += 1
                return False
            self._seen[event_id] = None
            if len(self._seen) > self.max_seen:
                self._seen.popitem(last=False)
            track = self.kiosks.setdefault(key, KioskTrack())
            if seq > track.last_seq + 1 and track.last_seq > 0:
                track.gaps.append((track.last_seq + 1, seq - 1))
            elif seq <= track.last_seq:
                track.gaps = _fill(track.gaps, seq)
            track.last_seq = max(track.last_seq, seq)
            self.events.append(event)
            return True

    def gaps(self, site: str, kiosk: str) -> list[tuple[int, int]]:
        with self.lock:
            track = self.kiosks.get((site, kiosk))
            return list(track.gaps) if track else []

    def last_seq(self, site: str, kiosk: str) -> int:
        with self.lock:
            track = self.kiosks.get((site, kiosk))
            return track.last_seq if track else 0

    # ------------------------------------------------------------------ MQTT
    def start(self, host: str, port: int, client_id: str = "gerbang-hub-consumer") -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
        )
        client.on_connect = lambda c, *_: (c.subscribe(EVENTS_FILTER, qos=1), self.connected.set())
        client.on_message = lambda _c, _u, msg: self.ingest(msg.topic, msg.payload)
        client.connect_async(host, port, keepalive=10)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


def _fill(gaps: list[tuple[int, int]], seq: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for low, high in gaps:
        if low <= seq <= high:
            out.extend(r for r in ((low, seq - 1), (seq + 1, high)) if r[0] <= r[1])
        else:
            out.append((low, high))
    return out
