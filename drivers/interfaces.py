"""Narrow device interfaces the transaction engine talks to.

Every backend (real hardware, wire-protocol simulator, in-process simulator) implements one of
these. Calls that wait take an explicit timeout and return ``None`` when nothing happened in time;
a device that cannot do its job raises :class:`DeviceError` so the engine can fail safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np


class HealthState(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass(frozen=True)
class Health:
    state: HealthState
    reason: str = ""

    @property
    def usable(self) -> bool:
        return self.state is not HealthState.FAILED

    @classmethod
    def ok(cls) -> Health:
        return cls(HealthState.OK)

    @classmethod
    def failed(cls, reason: str) -> Health:
        return cls(HealthState.FAILED, reason)


class DeviceError(RuntimeError):
    """A device could not do what was asked (disconnected, protocol failure, hardware fault)."""

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"{device}: {reason}")
        self.device = device
        self.reason = reason


@dataclass(frozen=True)
class DocumentRead:
    """The raw MRZ text a document reader delivered; parsing belongs to ``kiosk.documents``."""

    lines: tuple[str, ...]
    read_at: float
    # Simulators attach what the real world would carry implicitly (e.g. which simulated
    # traveller holds the document). Real backends leave it empty.
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Frame:
    """One camera frame: an RGB ``uint8`` array of shape (H, W, 3) and a monotonic timestamp."""

    image: np.ndarray
    timestamp: float
    sequence: int
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChipAccessKey:
    """What opens an ePassport chip (BAC, PACE with the MRZ): three MRZ fields, dates as YYMMDD."""

    document_number: str
    date_of_birth: str
    date_of_expiry: str


@dataclass(frozen=True)
class ChipSession:
    """One read of a chip: the access control used, the files as the chip stored them, and its cost."""

    access: str  # "PACE" or "BAC"
    files: Mapping[str, bytes]
    apdus: int
    bytes_sent: int
    bytes_received: int
    access_s: float  # access control, from the first APDU to the session keys
    elapsed_s: float  # the whole read
    file_s: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FingerprintResult:
    matched: bool
    score: int


class LaneEvent(StrEnum):
    """What the lane sensors report to the engine."""

    PERSON_ENTERED = "person_entered"  # crossed the entry threshold into the lane
    PERSON_EXITED = "person_exited"  # crossed the exit threshold out of the lane
    PERSON_RETREATED = "person_retreated"  # went back out through the entry side
    TAILGATING = "tailgating"  # more than one person detected in the lane
    DOOR_FORCED = "door_forced"
    EMERGENCY_RELEASE = "emergency_release"


class Signal(StrEnum):
    """Lane lamps; the UI repeats them with icon and words (never colour alone)."""

    READY = "ready"
    BUSY = "busy"
    GO = "go"
    STOP = "stop"
    OFF = "off"


@runtime_checkable
class Device(Protocol):
    name: str

    def health(self) -> Health: ...

    def close(self) -> None: ...


@runtime_checkable
class DocumentReader(Device, Protocol):
    def read(self, timeout_s: float) -> DocumentRead | None:
        """Wait up to ``timeout_s`` for a document; ``None`` when none was presented."""
        ...


@runtime_checkable
class Camera(Device, Protocol):
    def capture(self, timeout_s: float) -> Frame | None:
        """The next frame, or ``None`` when the camera produced none within ``timeout_s``."""
        ...


@runtime_checkable
class FingerprintSensor(Device, Protocol):
    def verify(self, reference_template: bytes, timeout_s: float) -> FingerprintResult | None:
        """Capture a finger and compare it 1:1 with ``reference_template``.

        ``None`` when no finger was placed within ``timeout_s``.
        """
        ...


@runtime_checkable
class ChipReader(Device, Protocol):
    """A contactless reader for ePassport chips (ICAO 9303 Part 11)."""

    def wait_for_card(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a chip on the reader; ``False`` when none came."""
        ...

    def read(self, key: ChipAccessKey, files: Sequence[str]) -> ChipSession:
        """Open the chip with ``key`` (PACE, else BAC) and read ``files`` (e.g. "COM", "DG1", "SOD").

        Files the chip does not have are left out. Raises ``drivers.chip.errors`` types: no card,
        access denied (wrong MRZ), secure-messaging failure, card removed during the read.
        """
        ...

    def internal_authenticate(self, challenge: bytes) -> bytes:
        """Active Authentication on the chip of the last :meth:`read`: its signature over ``challenge``."""
        ...


@runtime_checkable
class Gate(Device, Protocol):
    """Raw door locks, lamps and lane sensors. Use it through ``drivers.door_controller``."""

    def set_entry_unlocked(self, unlocked: bool) -> None: ...

    def set_exit_unlocked(self, unlocked: bool) -> None: ...

    def entry_unlocked(self) -> bool: ...

    def exit_unlocked(self) -> bool: ...

    def lane_occupied(self) -> bool: ...

    def set_signal(self, signal: Signal) -> None: ...

    def wait_event(self, timeout_s: float) -> LaneEvent | None:
        """The next lane event, or ``None`` when nothing happened within ``timeout_s``."""
        ...
