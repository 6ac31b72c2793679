"""The hub-request mailbox: signed hub commands the edge agent queued for the lane to act on.

The agent is a separate process and never touches the doors: it verifies a signed command and posts
it here; the lane engine takes the open requests between travellers, acts, and marks each one done
(see :class:`kiosk.remote.HubDesk`). A request is checked before it is queued, so the lane never
finds one it cannot act on, and a command id is queued at most once however often the hub resends it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiosk.store.core import StoreCore
from kiosk.store.records import dumps

LANE_MODES = ("in_service", "out_of_service", "maintenance")
KIOSK_COMMANDS = frozenset({"set_mode", "open_exit_door", "reload_config", "reboot"})
MAX_EXIT_HOLD_S = 60.0


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


class HubRequests:
    def __init__(self, core: StoreCore) -> None:
        self._core = core

    def post(self, request: Request) -> bool:
        """Validate and queue ``request``; False if this command id was already queued."""
        request.validate()
        with self._core.write(f"queue request {request.name}") as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO remote_requests (command_id, name, args, requested_at)"
                " VALUES (?, ?, ?, ?)",
                (request.command_id, request.name, dumps(dict(request.args)), self._core.timestamp()),
            )
            return cursor.rowcount == 1

    def open(self) -> list[Request]:
        """Requests not yet acted on, oldest first."""
        with self._core.read("read open requests") as db:
            rows = db.execute(
                "SELECT command_id, name, args FROM remote_requests WHERE done_at IS NULL"
                " ORDER BY requested_at, command_id"
            ).fetchall()
        return [Request(str(c), str(n), json.loads(a)) for c, n, a in rows]

    def finish(self, command_id: str, outcome: str) -> None:
        with self._core.write("finish request") as db:
            db.execute(
                "UPDATE remote_requests SET done_at = ?, outcome = ?"
                " WHERE command_id = ? AND done_at IS NULL",
                (self._core.timestamp(), outcome, command_id),
            )
