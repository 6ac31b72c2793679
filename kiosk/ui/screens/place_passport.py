"""Where and how to put the passport: the engine is already waiting for it."""

from __future__ import annotations

from typing import ClassVar

from kiosk.ui.widgets import GateScreen


class PlacePassportScreen(GateScreen):
    loops: ClassVar[dict[str, float]] = {"passport": 2.4}
