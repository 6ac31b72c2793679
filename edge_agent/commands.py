"""Verifies and records signed hub commands; the kiosk only ever holds the hub's PUBLIC key.

A command is trusted only if every check passes; any failure is answered with a machine-readable
reason and raised as an alert, because a rejected command at a border gate may be an attack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract.commands import COMMAND_FIELDS, COMMAND_NAMES, NONCE, is_command_id
from contract.signing import signature_valid
from contract.topics import Topics
from edge_agent.publisher import Outgoing
from kiosk.store import Request, Store

SEEN_META_KEY = "commands_seen"


class Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class CommandResult:
    command_id: str | None
    status: str
    reason: str | None = None
    result: dict[str, Any] | None = None

    def message(self) -> bytes:
        body: dict[str, Any] = {"command_id": self.command_id, "status": self.status}
        if self.reason is not None:
            body["reason"] = self.reason
        if self.result is not None:
            body["result"] = self.result
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class CommandHandler:
    def __init__(
        self,
        store: Store,
        topics: Topics,
        hub_key: Ed25519PublicKey,
        freshness_s: float = 60.0,
        diagnostics: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.store = store
        self.topics = topics
        self.hub_key = hub_key
        self.freshness_s = freshness_s
        self.diagnostics = diagnostics or (lambda: {"backlog": store.outbox.backlog()})
        # What the agent itself does on sync_now (ask the hub's retained bundles again).
        self.on_sync_now: list[Callable[[], None]] = []
        # On resend: the publisher re-reads the outbox from this seq (rows it had passed are pending again).
        self.on_resend: list[Callable[[int], None]] = []

    # ------------------------------------------------------------------ entry points
    def subscriptions(self) -> list[str]:
        return [self.topics.command_filter]

    def handle(self, topic: str, payload: bytes, retained: bool) -> list[Outgoing]:
        if retained:
            # A retained command would be replayed on every connect; the hub must never retain them.
            return []
        result = self.process(topic, payload)
        try:
            reply_topic = self.topics.command_result(result.command_id or "")
        except ValueError:
            reply_topic = self.topics.command_result("invalid")
        return [Outgoing(reply_topic, result.message())]

    def process(self, topic: str, payload: bytes, now: datetime | None = None) -> CommandResult:
        now = now or datetime.now(UTC)
        command_id: str | None = None
        try:
            body = json.loads(payload)
            if isinstance(body, dict) and is_command_id(body.get("command_id")):
                # Echoed only when well-formed: an unverified, unbounded string must not reach the hub.
                command_id = body["command_id"]
            result = self._accept(topic, body, now)
        except (Rejected, ValueError, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, Rejected) else "malformed"
            self.store.outbox.add(
                "alert", {"alert": "command_rejected", "reason": reason, "command_id": command_id}
            )
            return CommandResult(command_id, "rejected", reason)
        return result

    # ------------------------------------------------------------------ checks
    def _accept(self, topic: str, body: Any, now: datetime) -> CommandResult:
        if not isinstance(body, dict) or set(body) != COMMAND_FIELDS:
            raise Rejected("malformed")
        if not isinstance(body["signature"], str):
            raise Rejected("malformed")
        # Signature first: nothing else in an unauthenticated message is worth trusting or reporting on.
        if not signature_valid(self.hub_key, body):
            raise Rejected("bad_signature")
        command_id, name, target, args = body["command_id"], body["name"], body["target"], body["args"]
        nonce = body["nonce"]
        if not is_command_id(command_id) or not isinstance(nonce, str) or not NONCE.match(nonce):
            raise Rejected("malformed")
        try:
            issued = datetime.fromisoformat(body["issued_at"])
        except (TypeError, ValueError):
            raise Rejected("malformed") from None
        if issued.tzinfo is None or not isinstance(args, dict) or not isinstance(target, dict):
            raise Rejected("malformed")
        if name not in COMMAND_NAMES:
            raise Rejected("unknown_command")
        if topic != self.topics.command(name):
            # A valid command replayed onto another name's topic.
            raise Rejected("malformed")
        if target != {"site": self.topics.site, "kiosk": self.topics.kiosk}:
            raise Rejected("wrong_target")
        if abs((now - issued).total_seconds()) > self.freshness_s:
            raise Rejected("stale")
        self._remember(command_id, nonce, now)
        result = self._execute(command_id, name, args)
        self.store.outbox.add("audit", {"audit": "command_accepted", "command_id": command_id, "name": name})
        return CommandResult(command_id, "accepted", result=result)

    def _remember(self, command_id: str, nonce: str, now: datetime) -> None:
        raw = self.store.meta.get(SEEN_META_KEY)
        seen: dict[str, float] = json.loads(raw) if raw else {}
        if f"id:{command_id}" in seen or f"nonce:{nonce}" in seen:
            raise Rejected("replayed")
        # Anything older than twice the window would be rejected as stale anyway, so it can be forgotten.
        horizon = now.timestamp() - 2 * self.freshness_s
        seen = {k: t for k, t in seen.items() if t >= horizon}
        seen[f"id:{command_id}"] = seen[f"nonce:{nonce}"] = now.timestamp()
        self.store.meta.set(SEEN_META_KEY, json.dumps(seen, sort_keys=True))

    # ------------------------------------------------------------------ execution
    def _execute(self, command_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if name in ("diagnostics", "sync_now") and args:
            raise Rejected("invalid_args")
        if name == "diagnostics":
            return self.diagnostics()
        if name == "sync_now":
            for hook in self.on_sync_now:
                hook()
            return {"requested": True}
        if name == "resend":
            return self._resend(args)
        # The agent never drives the doors itself: it leaves a request the kiosk process acts on
        # between travellers, and the kiosk's audit event says when it did.
        try:
            self.store.requests.post(Request(command_id, name, args))
        except ValueError as exc:
            raise Rejected("invalid_args") from exc
        return {"requested": True}

    def _resend(self, args: dict[str, Any]) -> dict[str, Any]:
        """The hub saw a seq gap (a broker lost events it had acknowledged): publish that range again."""
        low, high = args.get("from_seq"), args.get("to_seq")
        if set(args) != {"from_seq", "to_seq"} or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in (low, high)
        ):
            raise Rejected("invalid_args")
        try:
            counts = self.store.outbox.requeue(low, high)
        except ValueError:
            raise Rejected("invalid_args") from None
        for hook in self.on_resend:
            hook(low)
        # "compacted" events are gone for good (retention); the hub has to record them as lost.
        return {"from_seq": low, "to_seq": high, **counts}
