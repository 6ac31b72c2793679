"""Beside a simulated lane: send travellers of every archetype to the gate, break and mend devices.

Only built when every device is the in-process simulation; what it does goes through the
simulated world (the people and devices in front of the kiosk), never through the engine.
"""

from __future__ import annotations

from collections.abc import Callable

from kivy.properties import BooleanProperty
from kivy.uix.boxlayout import BoxLayout

from kiosk.simulation.population import ARCHETYPE_NAMES
from kiosk.ui.i18n import tr
from kiosk.ui.languages import N_
from kiosk.ui.palette import colours
from kiosk.ui.widgets import BigButton

ARCHETYPE_WORDS = {
    "citizen": N_("Indonesian citizen"),
    "visa_exempt": N_("Visa-exempt visitor"),
    "evisa": N_("Visitor with an e-visa"),
    "expired_passport": N_("Expired passport"),
    "missing_visa": N_("Visitor without a visa"),
    "minor": N_("Child"),
    "watchlisted": N_("Watchlist match"),
    "lost_stolen": N_("Lost or stolen passport"),
    "impostor": N_("Impostor"),
    "damaged_mrz": N_("Damaged passport"),
    "walks_away": N_("Walks away"),
    "does_not_enter": N_("Does not enter"),
    "tailgating": N_("Tailgating"),
    "chip_clone": N_("Cloned chip"),
    "chip_tampered": N_("Tampered chip"),
    "chip_missing": N_("Passport without a chip"),
    "dg1_mismatch": N_("Chip data differs from the page"),
}
# Keyboard shortcuts, in panel order.
SHORTCUTS = "1234567890qwertyu"
DEVICE_WORDS = {
    "document_reader": N_("Break the passport reader"),
    "chip": N_("Break the chip reader"),
    "camera": N_("Break the camera"),
    "fingerprint": N_("Break the fingerprint sensor"),
    "gate": N_("Break the gate"),
}
REPAIR = N_("Repair all devices")
HELP = N_("Press the help button")
FAULT_REASON = "fault injected from the simulation panel"


class SimPanel(BoxLayout):
    opened = BooleanProperty(False)

    def __init__(
        self,
        send: Callable[[str], None],
        fail: Callable[[str, str], None],
        repair: Callable[[], None],
        help_call: Callable[[], None],
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self._words: list[tuple[BigButton, str, str]] = []
        for key, name in zip(SHORTCUTS, ARCHETYPE_NAMES, strict=True):
            self._add(f"[{key}] ", ARCHETYPE_WORDS[name], lambda n=name: send(n), colours.accent)
        for device, words in DEVICE_WORDS.items():
            self._add("", words, lambda d=device: fail(d, FAULT_REASON), colours.secondary)
        self._add("", REPAIR, repair, colours.secondary)
        self._add("", HELP, help_call, colours.help)
        tr.on_switch(lambda _language: self._render())
        self._render()

    def _add(self, prefix: str, words: str, action: Callable[[], None], bg: tuple[float, ...]) -> None:
        button = BigButton(bg=list(bg))
        if bg != colours.accent:
            button.color = list(colours.secondary_ink if bg == colours.secondary else colours.help_ink)
        button.bind(on_release=lambda _b: action())
        self.ids.actions.add_widget(button)
        self._words.append((button, prefix, words))

    def _render(self) -> None:
        for button, prefix, words in self._words:
            button.text = prefix + tr.gettext(words)

    def toggle(self) -> None:
        self.opened = not self.opened
