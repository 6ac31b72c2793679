"""A de-duplicating event consumer: the hub side of the agent's at-least-once delivery.

At least once is not enough on its own: a broker that acknowledged an event (so the agent marked it
delivered) and then crashed before forwarding it has lost it, and the agent cannot know. Only the hub
can: ``seq`` is per kiosk and gap-free, so a hole in what arrived - or a tail missing against the
``last_seq`` of the kiosk's retained state - is a loss. Once a hole has stayed open longer than re-sent
or late events need to arrive, the consumer asks the kiosk for that range with a signed ``resend``
command; the agent marks those rows pending and publishes them again (duplicates are dropped here).
Events already removed by the kiosk's outbox retention cannot be re-sent; the cmd_result says how
many (``compacted``), and when nothing in a requested range is left the consumer writes that hole off
as lost (:attr:`EventConsumer.unrecoverable` counts the seqs) instead of asking forever.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from contract.broker import TlsOptions
from contract.commands import RESEND_MAX_SPAN
from contract.topics import Topics
from hub.ledger import EventLedger
from hub.signer import sign_ack, sign_command

log = logging.getLogger(__name__)

EVENTS_FILTER = "gerbang/v1/+/+/events/#"
STATE_FILTER = "gerbang/v1/+/+/state"
RESULTS_FILTER = "gerbang/v1/+/+/cmd_result/+"
KioskKey = tuple[str, str]


@dataclass
class Gap:
    low: int
    high: int
    opened_at: float  # monotonic time the hole was first seen
    asked_at: float | None = None  # last resend request covering it


@dataclass
class KioskTrack:
    last_seq: int = 0
    # Open holes, split as late or re-sent events fill them in.
    gap_list: list[Gap] = field(default_factory=list)

    @property
    def gaps(self) -> list[tuple[int, int]]:
        return [(g.low, g.high) for g in self.gap_list]


@dataclass(frozen=True)
class ResendRequest:
    site: str
    kiosk: str
    from_seq: int
    to_seq: int
    command_id: str


class EventConsumer:
    """Pure bookkeeping (``ingest``, ``ingest_state``, ``due_resends``) plus an optional MQTT loop.

    With a ``signing_key``, :meth:`start` also runs the recovery loop that sends ``resend`` commands
    for holes older than ``recover_after_s`` (asked again every ``retry_s`` while still open).
    """

    def __init__(
        self,
        max_seen: int = 100_000,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        recover_after_s: float = 5.0,
        retry_s: float = 15.0,
        validate: Callable[[str, bytes], object] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        ledger: EventLedger | None = None,
    ) -> None:
        self.max_seen = max_seen
        self.signing_key = signing_key
        self.recover_after_s = recover_after_s
        self.retry_s = retry_s
        self._monotonic = monotonic
        # e.g. contract.schema.validate: a message off the contract is dropped and listed in ``invalid``.
        self.validate = validate
        self.invalid: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.duplicates = 0
        self.kiosks: dict[KioskKey, KioskTrack] = {}
        # Recovery figures: commands sent, their results, and what the kiosks could not re-send.
        self.resends_sent: list[ResendRequest] = []
        self.resend_results: dict[str, dict[str, Any]] = {}
        self.requeued = 0
        self.unrecoverable = 0
        self.states_received = 0
        # Bounded LRU of event ids: memory must not grow with fleet uptime.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pending_ids: dict[str, ResendRequest] = {}
        # With a ledger every event is stored durably and de-duplicated there (not in ``events`` or the
        # LRU), every kiosk's history is expected from seq 1, and the hub publishes signed watermarks.
        self.ledger = ledger
        self._acks_sent: dict[KioskKey, int] = {}
        if ledger is not None:
            self._load(ledger)
        self._client: mqtt.Client | None = None
        self._stop = threading.Event()
        self._recovery: threading.Thread | None = None
        self.connected = threading.Event()

    # ------------------------------------------------------------------ bookkeeping
    def _load(self, ledger: EventLedger) -> None:
        """Continue where a previous consumer stopped: its holes are asked for again after the delay."""
        now = self._monotonic()
        for site, kiosk in ledger.kiosks():
            position = ledger.position(site, kiosk)
            gaps = [Gap(low, high, now) for low, high in position.gaps]
            self.kiosks[(site, kiosk)] = KioskTrack(last_seq=position.last_seq, gap_list=gaps)

    def watch(self, site: str, kiosk: str, next_seq: int = 1) -> None:
        """Expect ``next_seq`` as this kiosk's next event (e.g. 1 for a new kiosk, or the hub's last + 1).

        Without it the first event seen sets the baseline, so a loss right at the start would go
        unnoticed; a hub that keeps its per-kiosk position across restarts calls this on start-up.
        """
        with self.lock:
            self.kiosks[(site, kiosk)] = KioskTrack(last_seq=next_seq - 1)

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
            if self.ledger is not None:
                return self._store(key, event, seq)
            if event_id in self._seen:
                self._seen.move_to_end(event_id)
                self.duplicates += 1
                return False
            self._seen[event_id] = None
            if len(self._seen) > self.max_seen:
                self._seen.popitem(last=False)
            track = self.kiosks.get(key)
            if track is None:
                track = self.kiosks[key] = KioskTrack(last_seq=seq - 1)
            self._advance(track, seq)
            self.events.append(event)
            return True

    def _store(self, key: KioskKey, event: dict[str, Any], seq: int) -> bool:
        assert self.ledger is not None
        if not self.ledger.add(key[0], key[1], event):
            self.duplicates += 1
            return False
        # Only once the row is committed may the watermark (and so the kiosk's compaction) pass it.
        track = self.kiosks.setdefault(key, KioskTrack())
        self._advance(track, seq)
        return True

    def ingest_state(self, topic: str, payload: bytes) -> None:
        """The retained state's ``last_seq``: events up to it exist, so any not received are a tail gap."""
        parts = topic.split("/")
        try:
            reported = int(json.loads(payload)["last_seq"])
        except (ValueError, KeyError, TypeError):
            return
        if len(parts) != 5:
            return
        with self.lock:
            self.states_received += 1
            track = self.kiosks.get((parts[2], parts[3]))
            if self.ledger is not None:
                self.ledger.note_reported(parts[2], parts[3], reported)
                # The whole history is wanted: a kiosk first seen here is missing everything up to it.
                track = self.kiosks.setdefault((parts[2], parts[3]), KioskTrack())
            if track is None:
                # A kiosk never seen before: start from here rather than ask for its whole history.
                self.kiosks[(parts[2], parts[3])] = KioskTrack(last_seq=reported)
            elif reported > track.last_seq:
                track.gap_list.append(Gap(track.last_seq + 1, reported, self._monotonic()))
                track.last_seq = reported

    def _advance(self, track: KioskTrack, seq: int) -> None:
        if seq > track.last_seq + 1:
            track.gap_list.append(Gap(track.last_seq + 1, seq - 1, self._monotonic()))
        elif seq <= track.last_seq:
            track.gap_list = _fill(track.gap_list, seq)
        track.last_seq = max(track.last_seq, seq)

    def gaps(self, site: str, kiosk: str) -> list[tuple[int, int]]:
        with self.lock:
            track = self.kiosks.get((site, kiosk))
            return track.gaps if track else []

    def last_seq(self, site: str, kiosk: str) -> int:
        with self.lock:
            track = self.kiosks.get((site, kiosk))
            return track.last_seq if track else 0

    def watermark(self, site: str, kiosk: str) -> int:
        """The highest seq up to which every event of the kiosk has been received (and, with a ledger,
        stored); holes written off as unrecoverable no longer hold it back."""
        with self.lock:
            track = self.kiosks.get((site, kiosk))
            if track is None:
                return 0
            return min(g.low for g in track.gap_list) - 1 if track.gap_list else track.last_seq

    def due_resends(self, max_span: int = RESEND_MAX_SPAN) -> list[tuple[str, str, int, int]]:
        """Holes open longer than ``recover_after_s`` and not asked for within ``retry_s``, in chunks.

        Marks them asked: call it only when the requests will be sent.
        """
        now = self._monotonic()
        due: list[tuple[str, str, int, int]] = []
        with self.lock:
            for (site, kiosk), track in self.kiosks.items():
                for gap in track.gap_list:
                    if now - gap.opened_at < self.recover_after_s:
                        continue
                    if gap.asked_at is not None and now - gap.asked_at < self.retry_s:
                        continue
                    gap.asked_at = now
                    for low in range(gap.low, gap.high + 1, max_span):
                        due.append((site, kiosk, low, min(gap.high, low + max_span - 1)))
        return due

    def ingest_result(self, topic: str, payload: bytes) -> None:
        command_id = topic.rsplit("/", 1)[-1]
        try:
            result = json.loads(payload)
        except ValueError:
            return
        with self.lock:
            request = self._pending_ids.pop(command_id, None)
            if request is None or not isinstance(result, dict):
                return
            self.resend_results[command_id] = result
            figures = result.get("result") or {}
            if result.get("status") != "accepted":
                log.warning("kiosk refused resend %s: %s", command_id, result.get("reason"))
                return
            self.requeued += int(figures.get("requeued", 0))
            if figures.get("requeued", 0) == 0 and figures.get("pending", 0) == 0:
                # Nothing left on the kiosk in that range (outbox retention removed it): write the
                # remaining hole off as lost, or it would be asked for forever.
                track = self.kiosks.get((request.site, request.kiosk))
                if track is not None:
                    track.gap_list, removed = _subtract(track.gap_list, request.from_seq, request.to_seq)
                    self.unrecoverable += removed

    # ------------------------------------------------------------------ recovery
    def request_resends(self) -> int:
        """Sign and publish a ``resend`` command per due hole; returns how many were sent."""
        client = self._client
        if self.signing_key is None or client is None or not self.connected.is_set():
            return 0
        sent = 0
        for site, kiosk, low, high in self.due_resends():
            target = {"site": site, "kiosk": kiosk}
            body = sign_command(self.signing_key, "resend", target, {"from_seq": low, "to_seq": high})
            request = ResendRequest(site, kiosk, low, high, body["command_id"])
            with self.lock:
                self._pending_ids[request.command_id] = request
                self.resends_sent.append(request)
            # QoS 1, never retained (the agent ignores retained commands). Lost if the kiosk is offline
            # right now; the hole stays open and is asked for again after retry_s.
            client.publish(f"gerbang/v1/{site}/{kiosk}/cmd/resend", json.dumps(body).encode(), qos=1)
            sent += 1
        return sent

    def publish_acks(self) -> int:
        """Publish each kiosk's watermark when it moved (retained, signed): only with a ledger, since a
        watermark lets the kiosk delete events and must never cover one the hub has not stored."""
        client = self._client
        if self.ledger is None or self.signing_key is None or client is None or not self.connected.is_set():
            return 0
        with self.lock:
            keys = list(self.kiosks)
        sent = 0
        for site, kiosk in keys:
            seq = self.watermark(site, kiosk)
            if seq <= 0 or self._acks_sent.get((site, kiosk)) == seq:
                continue
            body = sign_ack(self.signing_key, {"site": site, "kiosk": kiosk}, seq)
            topic = Topics(site, kiosk).ack
            info = client.publish(topic, json.dumps(body).encode(), qos=1, retain=True)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._acks_sent[(site, kiosk)] = seq
                sent += 1
        return sent

    def _recover_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.request_resends()
                self.publish_acks()
            except Exception:
                # The recovery loop must outlive one bad round (e.g. a publish during a disconnect).
                log.exception("resend round failed")

    # ------------------------------------------------------------------ MQTT
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            return
        # The broker may have lost our session (a crash without persistence): subscribe every time.
        client.subscribe([(EVENTS_FILTER, 1), (STATE_FILTER, 1), (RESULTS_FILTER, 1)])
        # ... and its retained watermarks with it: publish them all again.
        self._acks_sent.clear()
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self.validate is not None:
            try:
                self.validate(msg.topic, msg.payload)
            except ValueError as exc:
                log.warning("dropped a message off the contract on %s: %s", msg.topic, exc)
                with self.lock:
                    self.invalid.append((msg.topic, str(exc)))
                return
        if "/events/" in msg.topic:
            self.ingest(msg.topic, msg.payload)
        elif "/cmd_result/" in msg.topic:
            self.ingest_result(msg.topic, msg.payload)
        elif msg.topic.endswith("/state"):
            self.ingest_state(msg.topic, msg.payload)

    def start(
        self,
        host: str,
        port: int,
        client_id: str = "gerbang-hub-consumer",
        *,
        reconnect_delay: tuple[float, float] = (1.0, 30.0),
        recover_every_s: float = 1.0,
        tls: TlsOptions | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
        )
        client.reconnect_delay_set(*reconnect_delay)
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file),
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        if username is not None:
            client.username_pw_set(username, password)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *_: self.connected.clear()
        client.on_message = self._on_message
        client.connect_async(host, port, keepalive=10)
        client.loop_start()
        self._client = client
        self._stop.clear()
        if self.signing_key is not None:
            self._recovery = threading.Thread(
                target=self._recover_loop, args=(recover_every_s,), name="hub-recovery", daemon=True
            )
            self._recovery.start()

    def stop(self) -> None:
        self._stop.set()
        if self._recovery is not None:
            self._recovery.join(10)
            self._recovery = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.connected.clear()


def _subtract(gaps: list[Gap], low: int, high: int) -> tuple[list[Gap], int]:
    """The gaps without ``[low, high]``, and how many seqs were removed."""
    out: list[Gap] = []
    removed = 0
    for gap in gaps:
        overlap = min(gap.high, high) - max(gap.low, low) + 1
        if overlap <= 0:
            out.append(gap)
            continue
        removed += overlap
        out.extend(
            Gap(a, b, gap.opened_at, gap.asked_at)
            for a, b in ((gap.low, low - 1), (high + 1, gap.high))
            if a <= b
        )
    return out, removed


def _fill(gaps: list[Gap], seq: int) -> list[Gap]:
    out: list[Gap] = []
    for gap in gaps:
        if gap.low <= seq <= gap.high:
            # Both halves keep the hole's age and request time: it is the same loss.
            out.extend(
                Gap(low, high, gap.opened_at, gap.asked_at)
                for low, high in ((gap.low, seq - 1), (seq + 1, gap.high))
                if low <= high
            )
        else:
            out.append(gap)
    return out
