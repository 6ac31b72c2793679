"""The lane's desk for the hub: the mode the hub set, the requests it sent, the status it reads back.

The edge agent queues verified hub commands in the store's mailbox (:mod:`kiosk.store.requests`);
the lane engine takes them here between travellers, acts, and records an audit event. The engine in
turn writes its status (mode, device health, versions, a heartbeat) to store meta, which the agent
publishes as retained state and uses to tell the hub the kiosk is down.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kiosk.store import Request, Store, StoreError
from kiosk.store.requests import LANE_MODES

log = logging.getLogger(__name__)

MODE_META_KEY = "lane_mode"
STATUS_META_KEY = "kiosk_status"
# Exit codes of a kiosk process that stops for its supervisor (systemd): restart the process
# (reload_config), or reboot the machine (reboot) - the kiosk user has no right to reboot it itself.
RESTART_EXIT_CODE = 75
REBOOT_EXIT_CODE = 76
EXIT_CODES = {"reload_config": RESTART_EXIT_CODE, "reboot": REBOOT_EXIT_CODE}


@dataclass
class HubDesk:
    """What the engine consults: the mode the hub set, pending requests, and the status heartbeat."""

    store: Store
    heartbeat_s: float = 10.0
    monotonic: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        # The hub's mode survives a restart: a lane closed for maintenance must not reopen on reboot.
        try:
            stored = self.store.meta.get(MODE_META_KEY)
        except StoreError:
            stored = None
        self.mode = stored if stored in LANE_MODES else "in_service"
        self.restart_requested: str | None = None
        self._last_status: dict[str, Any] | None = None
        self._last_write = float("-inf")

    @property
    def closed_reason(self) -> str | None:
        return None if self.mode == "in_service" else f"set to {self.mode} by the hub"

    def take_requests(self) -> list[Request]:
        try:
            return self.store.requests.open()
        except StoreError as exc:
            log.error("cannot read hub requests: %s", exc)
            return []

    def set_mode(self, mode: str) -> None:
        self.store.meta.set(MODE_META_KEY, mode)
        self.mode = mode

    def done(self, request: Request, outcome: str, training: bool) -> None:
        """Mark the request done and leave the audit trail of what the lane did."""
        try:
            self.store.requests.finish(request.command_id, outcome)
            self.store.outbox.add(
                "audit",
                {
                    "audit": "command_executed",
                    "command_id": request.command_id,
                    "name": request.name,
                    "outcome": outcome,
                },
                training=training,
            )
        except StoreError as exc:
            log.error("could not record hub request %s: %s", request.name, exc)

    def report(self, status: Mapping[str, Any]) -> None:
        """Write the status when it changed, else at most once per heartbeat (each write is an fsync)."""
        now = self.monotonic()
        content = dict(status)
        if content == self._last_status and now - self._last_write < self.heartbeat_s:
            return
        record = {
            **content,
            "pid": os.getpid(),
            "heartbeat_s": self.heartbeat_s,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            self.store.meta.set(STATUS_META_KEY, json.dumps(record, sort_keys=True))
        except StoreError as exc:
            log.error("cannot write the kiosk status: %s", exc)
            return
        self._last_status, self._last_write = content, now


def read_status(store: Store) -> dict[str, Any] | None:
    raw = store.meta.get(STATUS_META_KEY)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
