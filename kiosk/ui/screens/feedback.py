"""After passage: one tap on a face, or a problem from a list; skippable, and gone by itself.

The lane does not wait for it: a new traveller's passport replaces this screen at once.
"""

from __future__ import annotations

from kivy.app import App
from kivy.clock import Clock, ClockEvent
from kivy.properties import NumericProperty, OptionProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

from kiosk.ui.i18n import tr
from kiosk.ui.languages import N_
from kiosk.ui.widgets import BigButton, GateScreen

RATINGS = (
    (1, -1.0, N_("Very bad")),
    (2, -0.5, N_("Bad")),
    (3, 0.0, N_("Average")),
    (4, 0.5, N_("Good")),
    (5, 1.0, N_("Very good")),
)
PROBLEMS = (
    ("instructions", N_("The instructions were hard to follow")),
    ("document_reader", N_("The passport reader did not work")),
    ("camera", N_("The camera did not work")),
    ("fingerprint", N_("The fingerprint sensor did not work")),
    ("too_slow", N_("It took too long")),
    ("other", N_("Something else")),
)
THANKS_S = 2.5


class RatingButton(ButtonBehavior, BoxLayout):
    score = NumericProperty(0)
    mood = NumericProperty(0.0)
    words = StringProperty("")


class FeedbackScreen(GateScreen):
    mode = OptionProperty("rate", options=["rate", "problem", "thanks"])

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.transaction_id: str | None = None
        self._close: ClockEvent | None = None
        self._faces = [RatingButton(score=score, mood=mood) for score, mood, _ in RATINGS]
        for face in self._faces:
            face.bind(on_release=lambda button: self.rate(int(button.score)))
            self.ids.faces.add_widget(face)
        self._problems = [BigButton() for _ in PROBLEMS]
        for button, (code, _) in zip(self._problems, PROBLEMS, strict=True):
            button.bind(on_release=lambda _b, c=code: self.report(c))
            self.ids.problems.add_widget(button)
        tr.on_switch(lambda _language: self._words())
        self._words()

    def _words(self) -> None:
        for face, (_, _, words) in zip(self._faces, RATINGS, strict=True):
            face.words = tr.gettext(words)
        for button, (_, words) in zip(self._problems, PROBLEMS, strict=True):
            button.text = tr.gettext(words)

    def open_for(self, transaction_id: str | None) -> None:
        self.transaction_id = transaction_id
        self.mode = "rate"
        self._dismiss_after(App.get_running_app().config_model.ui.feedback_s)

    def rate(self, score: int) -> None:
        self._record({"rating": score})
        self._thank()

    def want_report(self) -> None:
        self.mode = "problem"
        self._dismiss_after(App.get_running_app().config_model.ui.feedback_s)

    def report(self, problem: str) -> None:
        self._record({"problem": problem})
        self._thank()

    def skip(self) -> None:
        self._finish()

    def _record(self, data: dict[str, object]) -> None:
        App.get_running_app().record_feedback(self.transaction_id, data)

    def _thank(self) -> None:
        self.mode = "thanks"
        self._dismiss_after(THANKS_S)

    def _dismiss_after(self, seconds: float) -> None:
        if self._close is not None:
            self._close.cancel()
        self._close = Clock.schedule_once(lambda _dt: self._finish(), seconds)

    def _finish(self) -> None:
        if self.manager is not None and self.manager.current == self.name:
            App.get_running_app().back_to_start()

    def on_leave(self, *args: object) -> None:
        super().on_leave(*args)
        if self._close is not None:
            self._close.cancel()
        self.reset()

    def reset(self) -> None:
        self.transaction_id = None
        self.mode = "rate"
