"""Store-and-forward publisher: drains the kiosk's SQLite outbox to an MQTT broker.

SQLite is the only queue. An event is marked delivered only when the broker's PUBACK arrives; on any
disconnect the in-flight map is dropped and the next connection re-reads undelivered events from the
store, so a crash, a broker restart or a kill -9 loses nothing (the hub de-duplicates by event_id).
A fresh paho client is made for every connection: paho's own session queue is memory-only and its
reconnect backoff has no jitter, so neither is relied on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from common.backoff import Backoff
from contract.broker import TlsOptions
from contract.topics import OFFLINE, ONLINE, Topics
from kiosk.store import Store, StoreError
from kiosk.store.records import OutboxEvent

log = logging.getLogger(__name__)

# Room above the outbox window for what is not outbox: availability, state, metrics, command results.
SPARE_SLOTS = 16


class Outgoing(NamedTuple):
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    # Called once the message is handed to the connection (e.g. to advance a metrics window only then).
    sent: Callable[[], None] | None = None


class Inbound(Protocol):
    """Something the agent subscribes for (commands, reference-data bundles)."""

    def subscriptions(self) -> Sequence[str]: ...

    def handle(self, topic: str, payload: bytes, retained: bool) -> Sequence[Outgoing]: ...


@dataclass
class Periodic:
    """A message source published on every connect (if ``on_connect``) and every ``interval_s``."""

    interval_s: float
    produce: Callable[[], Sequence[Outgoing]]
    on_connect: bool = True
    # Called on every connect before the first produce (e.g. forget what the last connection sent).
    reset: Callable[[], None] | None = None
    due: float = field(default=0.0, init=False)


@dataclass
class PublisherOptions:
    host: str
    port: int = 1883
    keepalive_s: int = 30
    mqtt_version: int = 4  # 4 = MQTT 3.1.1, 5 = MQTT 5
    page_size: int = 200
    max_inflight: int = 100
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.5, maximum_s=30.0))
    connect_timeout_s: float = 10.0
    tls: TlsOptions | None = None
    username: str | None = None
    password: str | None = None


def event_message(event: OutboxEvent) -> bytes:
    """The wire form: the stored payload plus the outbox envelope fields."""
    body = {
        "event_id": event.event_id,
        "seq": event.seq,
        "type": str(event.type),
        "ts": event.ts.isoformat(),
        "schema": event.schema,
        "training": event.training,
        # Parsed so the hub gets one JSON document rather than JSON-in-a-string.
        "payload": json.loads(event.payload),
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


class Publisher:
    """Runs in one thread: paho's network loop is driven by :meth:`run`, so callbacks need no locks."""

    def __init__(
        self,
        store: Store,
        topics: Topics,
        options: PublisherOptions,
        inbound: Sequence[Inbound] = (),
        periodic: Sequence[Periodic] = (),
    ) -> None:
        self.store = store
        self.inbound = list(inbound)
        self.periodic = list(periodic)
        self.topics = topics
        self.options = options
        self._stop = threading.Event()
        self._client: mqtt.Client | None = None
        self._connected = False
        self._refused = False  # the broker answered CONNACK with a refusal (already logged)
        self._inflight: dict[int, int] = {}  # mid -> seq
        self._acked: list[int] = []
        self._page: list[OutboxEvent] = []
        self._cursor = 0
        self.delivered = 0
        self.connections = 0

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ callbacks
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = True
            log.warning("broker refused connection: %s", reason)
            return
        self._connected = True
        self.connections += 1
        self.options.backoff.reset()
        self._reset_window()
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        for task in self.periodic:
            # Birth: the hub gets fresh retained state (and first metrics) as soon as we are back.
            task.due = 0.0 if task.on_connect else time.monotonic() + task.interval_s
            if task.reset is not None:
                task.reset()
        # Clean sessions forget subscriptions, so subscribe again on every connect.
        for handler in self.inbound:
            for topic_filter in handler.subscriptions():
                client.subscribe(topic_filter, qos=1)
        log.info("connected to %s:%s", self.options.host, self.options.port)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._connected:
            # Before CONNACK, _connect says why in words paho's "Unspecified error" does not.
            log.warning("disconnected: %s", reason)
        self._connected = False

    def _on_publish(self, client: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if client is not self._client:
            return
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return
        if getattr(reason, "is_failure", False):
            # An MQTT 5 broker refused it (e.g. not authorised): it stays pending for the next connection.
            log.warning("broker refused event seq %s: %s", seq, reason)
            return
        self._acked.append(seq)

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if client is not self._client:
            return
        for handler in self.inbound:
            if any(mqtt.topic_matches_sub(f, msg.topic) for f in handler.subscriptions()):
                try:
                    replies = handler.handle(msg.topic, msg.payload, bool(msg.retain))
                except Exception:
                    # One bad message must not take the device's only link to the hub down with it.
                    log.exception("handler for %s failed", msg.topic)
                    continue
                for reply in replies:
                    if not self.publish_now(reply):
                        # Only when the connection is gone or paho's queue is full (a burst of commands
                        # during a drain); the hub asks again on a missing cmd_result.
                        log.warning("reply on %s could not be sent", reply.topic)

    def resubscribe(self, filters: Sequence[str]) -> None:
        """Subscribe again: the broker then re-sends its retained messages on these filters."""
        if self._client is not None and self._connected:
            for topic_filter in filters:
                self._client.subscribe(topic_filter, qos=1)

    def rewind(self, seq: int) -> None:
        """Read the outbox again from ``seq``: rows already passed were made pending (a hub resend).

        Called from a message handler, i.e. inside this publisher's loop thread. In-flight events in
        the range may go out twice; the hub de-duplicates.
        """
        if seq <= self._cursor:
            self._cursor = max(0, seq - 1)
            self._page.clear()

    def publish_now(self, message: Outgoing) -> bool:
        """Publish outside the outbox (state, metrics); dropped when offline: they are snapshots."""
        if self._client is None or not self._connected:
            return False
        info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        if message.sent is not None:
            message.sent()
        return True

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for task in self.periodic:
            if now >= task.due:
                task.due = now + task.interval_s
                try:
                    messages = task.produce()
                except Exception:
                    log.exception("periodic task failed")
                    continue
                for message in messages:
                    self.publish_now(message)

    def _reset_window(self) -> None:
        # Anything not acknowledged is re-read from SQLite: duplicates are allowed, losses are not.
        self._inflight.clear()
        self._page.clear()
        self._cursor = 0

    # ------------------------------------------------------------------ loop
    def _new_client(self) -> mqtt.Client:
        protocol = mqtt.MQTTv5 if self.options.mqtt_version == 5 else mqtt.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"gerbang-{self.topics.site}-{self.topics.kiosk}",
            protocol=protocol,
            **({} if protocol == mqtt.MQTTv5 else {"clean_session": True}),
        )
        client.max_inflight_messages_set(self.options.max_inflight + SPARE_SLOTS)
        client.max_queued_messages_set(self.options.max_inflight + SPARE_SLOTS)
        client.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        if self.options.username is not None:
            client.username_pw_set(self.options.username, self.options.password)
        tls = self.options.tls
        if tls is not None:
            # Server verification is always on (CERT_REQUIRED + hostname check): no way to turn it off.
            client.tls_set(
                ca_certs=str(tls.ca_file),
                certfile=None if tls.cert_file is None else str(tls.cert_file),
                keyfile=None if tls.key_file is None else str(tls.key_file),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect(self) -> bool:
        self._reset_window()
        self._client = self._new_client()
        try:
            self._client.connect(self.options.host, self.options.port, self.options.keepalive_s)
        except OSError as exc:
            log.warning("cannot connect to %s:%s: %s", self.options.host, self.options.port, exc)
            return False
        self._refused = False
        deadline = time.monotonic() + self.options.connect_timeout_s
        while not self._connected and time.monotonic() < deadline and not self._stop.is_set():
            if self._client.loop(0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                if not self._refused:
                    # With TLS 1.3 a broker that rejects the client certificate (or wants one) only says
                    # so after the handshake: the first read fails and paho reports nothing useful.
                    hint = " (client certificate missing or not accepted?)" if self.options.tls else ""
                    log.warning(
                        "connection to %s:%s closed by the broker before CONNACK%s",
                        self.options.host,
                        self.options.port,
                        hint,
                    )
                return False
        if not self._connected and not self._stop.is_set():
            log.warning(
                "no CONNACK from %s:%s within %.0f s",
                self.options.host,
                self.options.port,
                self.options.connect_timeout_s,
            )
        return self._connected

    def _drop(self) -> None:
        if self._client is not None:
            # Already gone after a broker crash; the socket is closed either way.
            with contextlib.suppress(OSError):
                self._client.disconnect()
        self._connected = False
        self._reset_window()

    def _fill_window(self) -> None:
        assert self._client is not None
        while len(self._inflight) < self.options.max_inflight:
            if not self._page:
                self._page = self.store.outbox.pending(self.options.page_size, after_seq=self._cursor)
                if not self._page:
                    return
            event = self._page.pop(0)
            info = self._client.publish(self.topics.event(str(event.type)), event_message(event), qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._page.insert(0, event)
                return
            self._inflight[info.mid] = event.seq
            self._cursor = event.seq

    def _flush_acks(self) -> None:
        if not self._acked:
            return
        try:
            self.delivered += self.store.outbox.mark_delivered(self._acked)
        except StoreError as exc:
            # The kiosk held the write lock past the busy timeout: keep the PUBACKs and record them on a
            # later pass. The agent must outlive a busy store; a lost mark only costs a duplicate.
            log.warning("PUBACKs not recorded yet: %s", exc)
            return
        self._acked.clear()

    def run(self, on_idle: Callable[[], None] | None = None) -> None:
        """Publish until :meth:`stop`; then announce "offline" and disconnect cleanly."""
        while not self._stop.is_set():
            if not self._connected and not self._connect():
                self._drop()
                self._stop.wait(self.options.backoff.next_delay())
                continue
            assert self._client is not None
            self._run_periodic()
            self._fill_window()
            rc = self._client.loop(0.05)
            self._flush_acks()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not self._connected:
                log.warning("connection lost (%s)", rc)
                self._drop()
                self._stop.wait(self.options.backoff.next_delay())
                continue
            if on_idle is not None and not self._inflight and not self._page:
                on_idle()
        self._shutdown()

    def _shutdown(self) -> None:
        client = self._client
        if client is None or not self._connected:
            return
        info = client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
        deadline = time.monotonic() + 5.0
        while (not info.is_published() or self._inflight) and time.monotonic() < deadline:
            if client.loop(0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            self._flush_acks()
        self._flush_acks()
        client.disconnect()
        client.loop(0.05)
        self._connected = False
