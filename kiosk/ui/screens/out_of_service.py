"""The lane is closed: friendly, and pointing to the staffed counter."""

from __future__ import annotations

from kiosk.ui.palette import colours
from kiosk.ui.widgets import GateScreen


class OutOfServiceScreen(GateScreen):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bg = list(colours.closed)
