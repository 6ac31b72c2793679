"""Staff only: the PIN pad behind the hidden corner gesture."""

from __future__ import annotations

from kivy.app import App
from kivy.properties import StringProperty

from kiosk.pinlock import PinResult, PinVerdict
from kiosk.ui.i18n import tr
from kiosk.ui.languages import N_
from kiosk.ui.palette import colours
from kiosk.ui.widgets import BigButton, GateScreen

MAX_DIGITS = 12
MESSAGES = {
    PinVerdict.WRONG: N_("Wrong PIN. Tries left: {count}"),
    PinVerdict.LOCKED: N_("Too many wrong PINs. Locked for {minutes} more minutes."),
    PinVerdict.DISABLED: N_("Maintenance is not set up on this kiosk."),
}


class PinScreen(GateScreen):
    dots = StringProperty("")
    message = StringProperty("")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._pin = ""
        self._result: PinResult | None = None
        for key in "123456789":
            self._key(key)
        clear = BigButton(bg=list(colours.secondary), color=list(colours.secondary_ink))
        clear.bind(on_release=lambda _b: self.clear())
        self.ids.keypad.add_widget(clear)
        self._key("0")
        enter = BigButton()
        enter.bind(on_release=lambda _b: self.submit())
        self.ids.keypad.add_widget(enter)
        self._labels = {clear: N_("Clear"), enter: N_("OK")}
        tr.on_switch(lambda _language: self._words())
        self._words()

    def _key(self, digit: str) -> None:
        button = BigButton(text=digit)  # digits are not words: nothing to translate
        button.bind(on_release=lambda _b: self.press(digit))
        self.ids.keypad.add_widget(button)

    def _words(self) -> None:
        for button, words in self._labels.items():
            button.text = tr.gettext(words)
        self._show(self._result)

    def press(self, digit: str) -> None:
        if len(self._pin) < MAX_DIGITS:
            self._pin += digit
            self.dots = "●" * len(self._pin)

    def clear(self) -> None:
        self._pin = ""
        self.dots = ""

    def submit(self) -> None:
        pin, self._pin, self.dots = self._pin, "", ""
        App.get_running_app().try_pin(pin, self.show_result)

    def show_result(self, result: PinResult) -> None:
        self._result = result
        self._show(result)

    def _show(self, result: PinResult | None) -> None:
        if result is None or result.verdict not in MESSAGES:
            self.message = ""
            return
        self.message = tr.gettext(MESSAGES[result.verdict]).format(
            count=tr.number(result.failures_left), minutes=tr.number(max(1, round(result.locked_for_s / 60)))
        )

    def reset(self) -> None:
        self.clear()
        self._result = None
        self.message = ""

    def on_leave(self, *args: object) -> None:
        super().on_leave(*args)
        self.reset()

    def back(self) -> None:
        App.get_running_app().back_to_start()
