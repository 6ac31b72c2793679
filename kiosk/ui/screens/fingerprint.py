"""Place a finger on the sensor; after a while, a hint for a better try."""

from __future__ import annotations

from typing import ClassVar

from kivy.clock import Clock, ClockEvent
from kivy.properties import BooleanProperty

from kiosk.ui.widgets import GateScreen

RETRY_HINT_AFTER_S = 6.0  # the engine retries on its own; a hint helps the next try succeed


class FingerprintScreen(GateScreen):
    retrying = BooleanProperty(False)
    loops: ClassVar[dict[str, float]] = {"finger": 2.2}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._hint: ClockEvent | None = None

    def on_pre_enter(self, *args: object) -> None:
        super().on_pre_enter(*args)
        self.retrying = False
        self._hint = Clock.schedule_once(lambda _dt: setattr(self, "retrying", True), RETRY_HINT_AFTER_S)

    def on_leave(self, *args: object) -> None:
        super().on_leave(*args)
        if self._hint is not None:
            self._hint.cancel()
        self.retrying = False
