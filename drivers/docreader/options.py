"""The ``[devices.document_reader.options]`` table, checked strictly.

A typo in a key or a value of the wrong type stops the kiosk with the key named: a reader that
silently fell back to a default framing would drop every document at a border post.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import serial

from drivers.docreader.protocol import STATUS_PROFILES, Framing, ParserSettings, StatusProfile

KEYS = frozenset(
    {
        "framing",
        "idle_ms",
        "max_document_bytes",
        "events",
        "event_present",
        "event_removed",
        "queue_size",
        "parity",
        "stopbits",
        "bytesize",
    }
)
PARITIES = {
    "N": serial.PARITY_NONE,
    "E": serial.PARITY_EVEN,
    "O": serial.PARITY_ODD,
    "M": serial.PARITY_MARK,
    "S": serial.PARITY_SPACE,
}


class OptionError(ValueError):
    """An option is unknown or has a value the reader cannot use; the message names the key."""


@dataclass(frozen=True)
class ReaderOptions:
    settings: ParserSettings
    queue_size: int
    serial_options: dict[str, Any]


def parse_options(options: Mapping[str, Any]) -> ReaderOptions:
    unknown = sorted(set(options) - KEYS)
    if unknown:
        raise OptionError(f"options: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    framing = _choice(options, "framing", [f.value for f in Framing], Framing.CR.value)
    profile = STATUS_PROFILES[_choice(options, "events", list(STATUS_PROFILES), "none")]
    try:
        status = StatusProfile(
            present=_token(options, "event_present", profile.present),
            removed=_token(options, "event_removed", profile.removed),
        )
    except ValueError as exc:
        raise OptionError(f"options.events/event_present/event_removed: {exc}") from None
    try:
        settings = ParserSettings(
            framing=Framing(framing),
            idle_s=_number(options, "idle_ms", 500) / 1000.0,
            max_document_bytes=int(_number(options, "max_document_bytes", 256, integer=True)),
            status=status,
        )
    except ValueError as exc:
        raise OptionError(f"options: {exc}") from None
    queue_size = int(_number(options, "queue_size", 4, integer=True))
    if not 1 <= queue_size <= 64:
        raise OptionError("options.queue_size: must be between 1 and 64")
    serial_options = {
        "parity": PARITIES[_choice(options, "parity", list(PARITIES), "N")],
        "stopbits": _number(options, "stopbits", 1),
        "bytesize": int(_number(options, "bytesize", 8, integer=True)),
    }
    if serial_options["stopbits"] not in serial.Serial.STOPBITS:
        raise OptionError("options.stopbits: must be 1, 1.5 or 2")
    if serial_options["bytesize"] not in (7, 8):
        raise OptionError("options.bytesize: must be 7 or 8")
    return ReaderOptions(settings, queue_size, serial_options)


def _choice(options: Mapping[str, Any], key: str, allowed: list[str], default: str) -> str:
    value = options.get(key, default)
    if value not in allowed:
        raise OptionError(f"options.{key}: must be one of {', '.join(allowed)}")
    return str(value)


def _number(options: Mapping[str, Any], key: str, default: float, *, integer: bool = False) -> float:
    value = options.get(key, default)
    kinds = (int,) if integer else (int, float)
    # bool is an int to Python, but `idle_ms = true` is a mistake, not 1 ms.
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise OptionError(f"options.{key}: must be {'an integer' if integer else 'a number'}")
    return value


def _token(options: Mapping[str, Any], key: str, default: bytes) -> bytes:
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value.isascii():
        raise OptionError(f"options.{key}: must be an ASCII string (\\u000e for a control byte)")
    return value.encode("ascii")
