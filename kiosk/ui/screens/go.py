"""Go ahead: green, an arrow, and the words — never the colour alone."""

from __future__ import annotations

from kiosk.ui.palette import colours
from kiosk.ui.widgets import GateScreen


class GoScreen(GateScreen):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bg = list(colours.go)
