"""What a camera backend provides: the contract the frame watchdog drives.

A backend only opens, reads and closes. Threads, restarts, health, sequence numbers and
timestamps are the watchdog's job (``drivers.camera.watchdog``), so every backend — the Pi camera,
a USB webcam, a folder of test images — behaves the same way when it stalls or disappears.

The watchdog calls ``open``, ``read`` and ``close`` of one source from one thread at a time;
a backend needs no locking of its own for them (control methods a simulator adds for other
threads do).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class SourceFrame:
    """An RGB ``uint8`` (H, W, 3) image straight from a backend, before it gets a sequence number."""

    image: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)


class FrameSource(Protocol):
    # Says which camera this is in health reasons and logs, e.g. "v4l2 /dev/video0".
    description: str

    def open(self) -> None:
        """Start delivering frames. Raises DeviceError when the camera cannot be opened."""
        ...

    def read(self, timeout_s: float) -> SourceFrame | None:
        """The next frame; ``None`` when none came within about ``timeout_s``.

        Must return within a bounded time even when the camera hangs: the watchdog can only restart
        a camera whose reader comes back. Raises DeviceError when the camera is broken or gone.
        """
        ...

    def close(self) -> None:
        """Release the camera. Never raises; safe to call when not open."""
        ...
