"""The kiosk's side of the hub link: requests the edge agent queued, and the status it reads back.

The agent is a separate process and never touches the doors: it verifies a signed command and queues
it in the store (``remote_requests``); the lane engine acts on it between travellers and records an
audit event. The engine in turn writes its status (mode, device health, versions, a heartbeat) to
store meta, which the agent publishes as retained state and uses to tell the hub the kiosk is down.
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

from kiosk.store import Store, StoreError

log = logging.getLogger(__name__)

LANE_MODES = ("in_service", "out_of_service", "maintenance")
KIOSK_COMMANDS = frozenset({"set_mode", "open_exit_door", "reload_config", "reboot"})
MODE_META_KEY = "lane_mode"
STATUS_META_KEY = "kiosk_status"
MAX_EXIT_HOLD_S = 60.0
# Exit codes of a kiosk process that stops for its supervisor (systemd): restart the process
# (reload_config), or reboot the machine (reboot) - the kiosk user has no right to reboot it itself.
RESTART_EXIT_CODE = 75
REBOOT_EXIT_CODE = 76
EXIT_CODES = {"reload_config": RESTART_EXIT_CODE, "reboot": REBOOT_EXIT_CODE}


@dataclass(frozen=True)
class Request:
    command_id: str
    name: str
    args: Mapping[str, Any]

    def validate(self) -> None:
        """Raises ValueError for arguments the kiosk could not act on (checked before queueing)."""
        args = dict(self.args)
        if self.name not in KIOSK_COMMANDS:
            raise ValueError(f"{self.name!r} is not a kiosk command")
        if self.name == "set_mode":
            reason = args.pop("reason", "")
            if args.pop("mode", None) not in LANE_MODES or not isinstance(reason, str) or len(reason) > 200:
                raise ValueError(f"set_mode needs mode in {LANE_MODES} and an optional short reason")
        elif self.name == "open_exit_door":
            hold = args.pop("hold_s", 10.0)
            if isinstance(hold, bool) or not isinstance(hold, int | float) or not 0 < hold <= MAX_EXIT_HOLD_S:
                raise ValueError(f"hold_s must be a number of seconds in (0, {MAX_EXIT_HOLD_S:g}]")
        if args:
            raise ValueError(f"unexpected arguments for {self.name}: {sorted(args)}")


def post_request(store: Store, request: Request) -> bool:
    request.validate()
    return store.post_request(request.command_id, request.name, request.args)


@dataclass
class HubDesk:
    """What the engine consults: the mode the hub set, pending requests, and the status heartbeat."""

    store: Store
    heartbeat_s: float = 10.0
    monotonic: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        # The hub's mode survives a restart: a lane closed for maintenance must not reopen on reboot.
        try:
            stored = self.store.get_meta(MODE_META_KEY)
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
            return [Request(c, n, a) for c, n, a in self.store.open_requests()]
        except StoreError as exc:
            log.error("cannot read hub requests: %s", exc)
            return []

    def set_mode(self, mode: str) -> None:
        self.store.set_meta(MODE_META_KEY, mode)
        self.mode = mode

    def done(self, request: Request, outcome: str, training: bool) -> None:
        """Mark the request done and leave the audit trail of what the lane did."""
        try:
            self.store.finish_request(request.command_id, outcome)
            self.store.add_event(
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
            self.store.set_meta(STATUS_META_KEY, json.dumps(record, sort_keys=True))
        except StoreError as exc:
            log.error("cannot write the kiosk status: %s", exc)
            return
        self._last_status, self._last_write = content, now


def read_status(store: Store) -> dict[str, Any] | None:
    raw = store.get_meta(STATUS_META_KEY)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
