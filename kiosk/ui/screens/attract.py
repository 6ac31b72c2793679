"""The idle screen: how the gate works, and a start button for those who want to be led."""

from __future__ import annotations

from typing import ClassVar

from kivy.app import App
from kivy.clock import Clock, ClockEvent
from kivy.properties import StringProperty

from kiosk.ui.i18n import tr
from kiosk.ui.navigator import Screen
from kiosk.ui.widgets import GateScreen


class AttractScreen(GateScreen):
    today = StringProperty("")
    loops: ClassVar[dict[str, float]] = {"howto": 6.0}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._date: ClockEvent | None = None
        tr.on_switch(lambda _language: self._show_date())

    def on_pre_enter(self, *args: object) -> None:
        super().on_pre_enter(*args)
        self._show_date()
        self._date = Clock.schedule_interval(lambda _dt: self._show_date(), 60)

    def on_leave(self, *args: object) -> None:
        super().on_leave(*args)
        if self._date is not None:
            self._date.cancel()

    def _show_date(self) -> None:
        app = App.get_running_app()
        if app is not None:
            self.today = tr.date(app.kiosk.clock.now().date())

    def start(self) -> None:
        App.get_running_app().show(Screen.PLACE_PASSPORT)
