"""The shapes of what the hub signs for one kiosk: commands and the acknowledgement watermark."""

from __future__ import annotations

import re
import uuid

COMMAND_NAMES = frozenset(
    {"set_mode", "open_exit_door", "sync_now", "reload_config", "diagnostics", "reboot", "resend"}
)
COMMAND_FIELDS = frozenset({"command_id", "name", "issued_at", "nonce", "target", "args", "signature"})
NONCE = re.compile(r"^[0-9a-f]{32}$")  # 128 random bits, lowercase hex
# The agent refuses wider resend ranges (kiosk.store.store.MAX_PAGE_ROWS); the hub splits bigger holes.
RESEND_MAX_SPAN = 10_000
ACK_FIELDS = frozenset({"target", "seq", "issued_at", "signature"})


def is_command_id(value: object) -> bool:
    """Only the canonical lowercase UUID form: one command must have exactly one id string."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
