"""The passport could not be read: what to do, try again, or go to an officer."""

from __future__ import annotations

from typing import ClassVar

from kivy.app import App

from kiosk.ui.navigator import Screen
from kiosk.ui.widgets import GateScreen


class DocumentProblemScreen(GateScreen):
    loops: ClassVar[dict[str, float]] = {"problem": 2.0}

    def try_again(self) -> None:
        # The engine is still waiting for the next read; only the instructions are shown again.
        App.get_running_app().show(Screen.PLACE_PASSPORT)

    def see_officer(self) -> None:
        App.get_running_app().leave_for_officer()
