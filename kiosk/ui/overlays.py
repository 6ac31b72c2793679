"""Things that appear over any screen: "help is coming" and "are you still there?"."""

from __future__ import annotations

from collections.abc import Callable

from kivy.clock import Clock, ClockEvent
from kivy.properties import StringProperty
from kivy.uix.modalview import ModalView

from kiosk.ui.i18n import tr


class HelpOverlay(ModalView):
    """An officer has been called; stays a while, or until tapped."""

    def show_for(self, seconds: float) -> None:
        if self._window is None:
            self.open(animation=False)
        Clock.unschedule(self._close)
        Clock.schedule_once(self._close, seconds)

    def _close(self, _dt: float = 0.0) -> None:
        self.dismiss(animation=False)


class InactivityOverlay(ModalView):
    """Counts down to a reset; any touch means the person is still there."""

    count = StringProperty("")

    def __init__(self, on_timeout: Callable[[], None], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._on_timeout = on_timeout
        self._left = 0
        self._ticker: ClockEvent | None = None

    def start(self, seconds: float) -> None:
        self._left = round(seconds)
        self.count = tr.number(self._left)
        self.open(animation=False)
        self._ticker = Clock.schedule_interval(self._tick, 1.0)

    def _tick(self, _dt: float) -> None:
        self._left -= 1
        self.count = tr.number(max(0, self._left))
        if self._left <= 0:
            self.stop()
            self._on_timeout()

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.dismiss(animation=False)

    @property
    def showing(self) -> bool:
        return self._ticker is not None

    def on_touch_down(self, touch: object) -> bool:
        self.stop()
        return True
