"""The building blocks every screen shares: words, buttons, the bottom bar and the layout frame."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from kivy.clock import Clock, ClockEvent
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from kiosk.ui.i18n import tr
from kiosk.ui.icons import Icon
from kiosk.ui.languages import LANGUAGES
from kiosk.ui.palette import colours

HOLD_S = 3.0  # the hidden maintenance gesture: a long press in the top-left corner


class Words(Label):
    """Wrapped, centred text whose height follows its content."""


class Body(Words):
    pass


class Heading(Words):
    pass


class Title(Words):
    pass


class Column(BoxLayout):
    """Stacked words and buttons, as tall as its content (or folded away when not ``shown``)."""

    shown = BooleanProperty(True)

    # A folded column still has (disabled) children lying over its neighbours: keep touches away.
    def on_touch_down(self, touch: object) -> bool:
        return bool(self.shown and super().on_touch_down(touch))

    def on_touch_up(self, touch: object) -> bool:
        return bool(self.shown and super().on_touch_up(touch))


class ButtonRow(BoxLayout):
    """Buttons side by side in landscape, stacked in portrait."""


class Stage(BoxLayout):
    """A picture and its words: stacked in portrait, side by side in landscape."""


class Picture(BoxLayout):
    # Size against the words beside it (weight 1): 0.72 gives the picture about 42% of the stage.
    share = NumericProperty(0.72)


class WordsArea(BoxLayout):
    pass


class BigButton(ButtonBehavior, Label):
    """A full-width button whose words wrap."""

    bg = ListProperty(list(colours.accent))


class FitButton(ButtonBehavior, Label):
    """A button as wide as its words (bottom bar)."""

    bg = ListProperty(list(colours.accent))


class LanguageButton(FitButton):
    code = StringProperty("")
    selected = BooleanProperty(False)


class LanguageBar(BoxLayout):
    """The three languages, each named in its own script, always in the same place."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.buttons = [LanguageButton(text=name, code=code) for code, name in LANGUAGES.items()]
        for button in self.buttons:
            button.bind(on_release=self._chosen)
            self.add_widget(button)
        tr.on_switch(self._mark)
        self._mark(tr.language)

    def _chosen(self, button: LanguageButton) -> None:
        from kivy.app import App

        App.get_running_app().switch_language(button.code)

    def _mark(self, language: str) -> None:
        for button in self.buttons:
            button.selected = button.code == language


class HelpButton(ButtonBehavior, BoxLayout):
    """ "Call an officer": the same place on every screen."""

    def on_release(self) -> None:
        from kivy.app import App

        App.get_running_app().call_officer()


class BottomBar(BoxLayout):
    pass


class TrainingBanner(Label):
    pass


class JourneyBar(Widget):
    """How far along the three steps the traveller is (0..1)."""

    value = NumericProperty(0.0)


class CornerHold(Widget):
    """An invisible corner that reports a long press (staff only)."""

    def __init__(self, on_hold: Callable[[], None], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._on_hold = on_hold
        self._pending: ClockEvent | None = None

    def on_touch_down(self, touch: object) -> bool:
        if self.collide_point(*touch.pos):  # type: ignore[attr-defined]
            self._pending = Clock.schedule_once(lambda _dt: self._on_hold(), HOLD_S)
        return False  # the touch still reaches whatever lies below

    def on_touch_up(self, touch: object) -> bool:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        return False


class GateScreen(Screen):
    """A screen with its background and the looping pictures it starts and stops."""

    bg = ListProperty(list(colours.page))
    loops: ClassVar[dict[str, float]] = {}  # icon id -> seconds per loop

    def on_pre_enter(self, *_args: object) -> None:
        for name, period in self.loops.items():
            icon: Icon = self.ids[name]
            icon.loop(period)

    def on_leave(self, *_args: object) -> None:
        for name in self.loops:
            self.ids[name].still()

    def reset(self) -> None:
        """Forget anything shown for the last traveller (no personal data stays on screen)."""
