"""The MQTT topic tree a kiosk publishes under: ``gerbang/v1/{site}/{kiosk}/...``.

The version segment lets the hub run two schemas side by side during a fleet upgrade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "gerbang/v1"
ONLINE = "online"
OFFLINE = "offline"
RESERVED_KIOSK_IDS = frozenset({"sync"})
LEDGER_HEAD_SEGMENT = "ledger_head"
# Same rule as the kiosk config ids: no MQTT wildcards or separators can sneak into a topic.
SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Topics:
    site: str
    kiosk: str

    def __post_init__(self) -> None:
        for name, value in (("site", self.site), ("kiosk", self.kiosk)):
            if not SEGMENT.match(value):
                raise ValueError(f"{name} {value!r} is not a valid topic segment")
        if self.kiosk in RESERVED_KIOSK_IDS:
            # gerbang/v1/{site}/sync/... is the site's bundle channel; a kiosk called "sync" could write it.
            raise ValueError(f"kiosk id {self.kiosk!r} is reserved")

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.site}/{self.kiosk}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    def event(self, event_type: str) -> str:
        if not SEGMENT.match(event_type):
            raise ValueError(f"event type {event_type!r} is not a valid topic segment")
        return f"{self.base}/events/{event_type}"

    def command(self, name: str) -> str:
        if not SEGMENT.match(name):
            raise ValueError(f"command name {name!r} is not a valid topic segment")
        return f"{self.base}/cmd/{name}"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    def command_result(self, command_id: str) -> str:
        if not SEGMENT.match(command_id):
            raise ValueError(f"command id {command_id!r} is not a valid topic segment")
        return f"{self.base}/cmd_result/{command_id}"

    @property
    def sync_filter(self) -> str:
        return f"{ROOT}/{self.site}/sync/+"

    def sync(self, dataset: str) -> str:
        if not SEGMENT.match(dataset):
            raise ValueError(f"dataset {dataset!r} is not a valid topic segment")
        return f"{ROOT}/{self.site}/sync/{dataset}"

    @property
    def metrics(self) -> str:
        return f"{self.base}/metrics"

    @property
    def ack(self) -> str:
        """The hub's retained, signed watermark: every seq up to it is durably stored at the hub."""
        return f"{self.base}/ack"

    @property
    def ledger_head(self) -> str:
        """The kiosk's retained signed tree head of its audit ledger (contract.tree_head)."""
        return f"{self.base}/{LEDGER_HEAD_SEGMENT}"
