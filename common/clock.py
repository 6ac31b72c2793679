"""Time for the engine: real for a lane, virtual for simulations.

The engine reads time and waits only through a :class:`Clock`, so a simulated traveller who walks
away costs a simulated timeout, not thirty real seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> datetime:
        """Wall-clock time (UTC), for records and date-based rules."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """Real elapsed time plus simulated waits: software latency stays measurable."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._wall_start = start or datetime.now(UTC)
        self._mono_start = time.monotonic()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not run backwards")
        with self._lock:
            self._offset += seconds

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def now(self) -> datetime:
        return self._wall_start + timedelta(seconds=self.monotonic() - self._mono_start)
