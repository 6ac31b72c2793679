"""The ``[devices.document_reader]`` sections: the in-process simulated reader and serial MRZ readers.

Checked strictly when the configuration loads: a typo in a key or a value of the wrong type stops
the kiosk with the key named, because a reader that silently fell back to a default framing would
drop every document at a border post.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.docreader.protocol import (
    LARGEST_DOCUMENT_BYTES,
    STATUS_PROFILES,
    Framing,
    ParserSettings,
    StatusProfile,
)
from drivers.registry import BackendSection, register


class SerialReaderOptions(BaseModel):
    """``[devices.document_reader.options]`` of a serial reader (see ``drivers.docreader.reader.build``)."""

    # strict: `idle_ms = true` or `idle_ms = "500"` is a mistake, not a number.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    framing: Literal["cr", "lf", "crlf", "stx-etx"] = "cr"
    idle_ms: float = Field(500, ge=10, le=10_000)
    max_document_bytes: int = Field(256, ge=LARGEST_DOCUMENT_BYTES, le=65_536)
    events: Literal["none", "at-lines", "control-bytes"] = "none"
    # Override a profile's token: one control byte (TOML "\u000e") or printable text; "" turns it off.
    event_present: str | None = None
    event_removed: str | None = None
    queue_size: int = Field(4, ge=1, le=64)
    parity: Literal["N", "E", "O", "M", "S"] = "N"  # pyserial's own parity letters
    stopbits: float = 1
    bytesize: Literal[7, 8] = 8

    @field_validator("event_present", "event_removed")
    @classmethod
    def _ascii(cls, value: str | None) -> str | None:
        if value is not None and not value.isascii():
            raise ValueError("must be an ASCII string (\\u000e for a control byte)")
        return value

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("must be 1, 1.5 or 2")
        return value

    @model_validator(mode="after")
    def _usable(self) -> SerialReaderOptions:
        try:
            self.settings  # noqa: B018 -- builds the parser settings, whose checks span several keys
        except ValueError as exc:
            raise ValueError(f"events/event_present/event_removed/max_document_bytes: {exc}") from None
        return self

    @property
    def status(self) -> StatusProfile:
        profile = STATUS_PROFILES[self.events]
        present, removed = self.event_present, self.event_removed
        return StatusProfile(
            present=profile.present if present is None else present.encode("ascii"),
            removed=profile.removed if removed is None else removed.encode("ascii"),
        )

    @property
    def settings(self) -> ParserSettings:
        return ParserSettings(
            framing=Framing(self.framing),
            idle_s=self.idle_ms / 1000.0,
            max_document_bytes=self.max_document_bytes,
            status=self.status,
        )

    @property
    def serial_options(self) -> dict[str, Any]:
        return {"parity": self.parity, "stopbits": self.stopbits, "bytesize": self.bytesize}


@register("document_reader")
class SimulatedReaderSection(BackendSection):
    """The in-process reader of the simulated lane (``drivers.simulated.lane``)."""

    backend: Literal["simulated"] = "simulated"
    simulated = True


@register("document_reader")
class SerialReaderSection(BackendSection):
    """An MRZ reader on a serial port (RS-232, or a USB-serial bridge: both are ``serial``)."""

    backend: Literal["serial"] = "serial"
    port: str = Field(min_length=1)  # e.g. /dev/serial/by-id/... or a pty link
    baudrate: int = Field(9600, gt=0)
    options: SerialReaderOptions = SerialReaderOptions()
