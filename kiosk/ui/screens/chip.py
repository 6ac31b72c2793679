"""The chip is being read through the cover: the passport must stay where it is."""

from __future__ import annotations

import math
from typing import ClassVar

from kivy.properties import NumericProperty

from kiosk.ui.widgets import GateScreen

UNKNOWN = -1.0  # the engine has not said how far the read got: the bar sweeps instead of filling


class ChipScreen(GateScreen):
    progress = NumericProperty(UNKNOWN)
    loops: ClassVar[dict[str, float]] = {"chip": 1.6}

    def show_progress(self, fraction: object) -> None:
        """How far the engine says the read got (0..1); anything else means it does not say."""
        known = isinstance(fraction, int | float) and math.isfinite(fraction)
        self.progress = min(1.0, max(0.0, float(fraction))) if known else UNKNOWN  # type: ignore[arg-type]

    def on_pre_enter(self, *args: object) -> None:
        super().on_pre_enter(*args)
        self.reset()  # a new read: nothing reported yet

    def reset(self) -> None:
        self.progress = UNKNOWN
