"""The retained ``state`` message: what the kiosk is doing now, as the agent sees it from the store.

The kiosk process writes its status (mode, device health, versions) with a heartbeat; the agent adds
what only it knows (backlog, dataset versions, its own version) and calls the kiosk down when the
heartbeat stops - a crashed UI must not look like a healthy lane on the operations console.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from contract.topics import Topics
from edge_agent.ack import hub_ack_seq
from edge_agent.publisher import Outgoing
from kiosk.remote import read_status
from kiosk.store import Store

STATE_SCHEMA = 1
MISSED_HEARTBEATS = 3
# Where edge_agent.sync records the hub settings bundle in force (kept here to avoid importing the
# bundle machinery into the state reporter).
SETTINGS_META = "sync_applied:config"


_MOVING = frozenset({"backlog", "last_seq", "hub_ack_seq", "unacked"})


def software_version() -> str:
    try:
        return metadata.version("gerbang")
    except metadata.PackageNotFoundError:
        return "unknown"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class StateReporter:
    """Produces the state message; re-sent when its content changes or every ``interval_s``."""

    def __init__(
        self,
        store: Store,
        topics: Topics,
        *,
        interval_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.topics = topics
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._now = now
        self._last: dict[str, Any] | None = None
        self._last_sent = float("-inf")

    def state(self) -> dict[str, Any]:
        now = self._now()
        status = read_status(self.store)
        running = False
        heartbeat_at: str | None = None
        if status is not None:
            heartbeat_at = status.get("updated_at")
            try:
                age = (now - datetime.fromisoformat(str(heartbeat_at))).total_seconds()
                running = age <= MISSED_HEARTBEATS * float(status.get("heartbeat_s", 10.0))
            except (TypeError, ValueError):
                running = False
        if status is None:
            mode, reason = "out_of_service", "kiosk has not reported yet"
        elif not running:
            mode, reason = "out_of_service", "kiosk process not running (heartbeat stopped)"
        else:
            mode, reason = str(status.get("mode", "out_of_service")), status.get("reason")
        last: str | None = None
        recent = self.store.transactions.recent(limit=1)
        if recent:
            started = recent[0].get("started_at")
            last = iso(started) if isinstance(started, datetime) else started
        versions = dict((status or {}).get("versions") or {})
        last_seq, acked = self.store.outbox.last_seq(), hub_ack_seq(self.store)
        return {
            "schema": STATE_SCHEMA,
            "mode": mode,
            "reason": reason,
            "kiosk_running": running,
            "heartbeat_at": heartbeat_at,
            "training": bool((status or {}).get("training", False)),
            "software": {"agent": software_version(), "kiosk": versions.get("kiosk")},
            "model": versions.get("model"),
            "config": versions.get("config"),
            # The fleet key the lane hashes document numbers with (as the kiosk process loaded it); null
            # when it has none (then it stays out of service) or has not reported yet.
            "fleet_key_id": (status or {}).get("fleet_key_id"),
            "datasets": self._dataset_versions(),
            "devices": dict((status or {}).get("devices") or {}),
            "last_transaction": last,
            "backlog": self.store.outbox.backlog(),
            # The hub compares it with the last seq it received: a missing tail shows as a gap too.
            "last_seq": last_seq,
            "hub_ack_seq": acked,
            # Events the hub has not yet confirmed storing: the agent keeps each of them until it does.
            "unacked": max(0, last_seq - acked),
        }

    def _dataset_versions(self) -> dict[str, str]:
        versions = self.store.reference_data.dataset_versions()
        raw = self.store.meta.get(SETTINGS_META)
        if raw:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                versions["config"] = str(json.loads(raw)["version"])
        return versions

    def message(self, state: dict[str, Any] | None = None) -> Outgoing:
        body = {**(state if state is not None else self.state()), "ts": iso(self._now())}
        return Outgoing(self.topics.state, json.dumps(body, sort_keys=True).encode(), qos=1, retain=True)

    def produce(self) -> list[Outgoing]:
        """Called often: returns a message only when something changed or the interval elapsed."""
        state = self.state()
        # These move with every event; on their own they wait for the interval.
        comparable = {k: v for k, v in state.items() if k not in _MOVING}
        now = self._monotonic()
        if comparable == self._last and now - self._last_sent < self.interval_s:
            return []
        self._last, self._last_sent = comparable, now
        return [self.message(state)]

    def reset(self) -> None:
        """Forget what was sent: the next :meth:`produce` publishes (a new connection's birth)."""
        self._last, self._last_sent = None, float("-inf")
