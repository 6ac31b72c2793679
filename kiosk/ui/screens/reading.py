"""The reader has the passport: keep still."""

from __future__ import annotations

from typing import ClassVar

from kiosk.ui.widgets import GateScreen


class ReadingScreen(GateScreen):
    loops: ClassVar[dict[str, float]] = {"reading": 1.4}
