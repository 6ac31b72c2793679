"""The machine is working; the words say which check, without saying what it found."""

from __future__ import annotations

from typing import ClassVar

from kivy.properties import NumericProperty, StringProperty

from kiosk.flow.states import State
from kiosk.ui.i18n import tr
from kiosk.ui.languages import N_
from kiosk.ui.widgets import GateScreen

STEP_TEXT = {
    State.DOCUMENT_CHECKS: N_("Checking your passport"),
    State.FACE_MATCH: N_("Checking your photo"),
    State.DECISION: N_("Almost done"),
}
STEP_PROGRESS = {State.DOCUMENT_CHECKS: 0.3, State.FACE_MATCH: 0.65, State.DECISION: 0.9}


class ProcessingScreen(GateScreen):
    step = StringProperty("")
    progress = NumericProperty(0.3)
    loops: ClassVar[dict[str, float]] = {"spinner": 1.2}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._state = State.DOCUMENT_CHECKS
        tr.on_switch(lambda _language: self.show_state(self._state))
        self.show_state(self._state)

    def show_state(self, state: State) -> None:
        if state in STEP_TEXT:
            self._state = state
            self.step = tr.gettext(STEP_TEXT[state])
            self.progress = STEP_PROGRESS[state]
