"""Please see an officer: neutral words, never the reason."""

from __future__ import annotations

from kiosk.ui.palette import colours
from kiosk.ui.widgets import GateScreen


class OfficerScreen(GateScreen):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bg = list(colours.officer)
