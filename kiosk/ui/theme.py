"""Sizes for the current window and display density; kv rules bind to :data:`sizes`."""

from __future__ import annotations

from kivy.event import EventDispatcher
from kivy.metrics import sp
from kivy.properties import NumericProperty

from kiosk.ui.accessibility import MIN_BODY_SP, MIN_TOUCH_MM, mm_to_px


class Sizes(EventDispatcher):
    """Type and target sizes for the current window; kv rules bind to these."""

    body = NumericProperty(24.0)
    heading = NumericProperty(36.0)
    title = NumericProperty(48.0)
    touch = NumericProperty(46.0)  # least touch target, px
    button = NumericProperty(72.0)  # height of ordinary buttons
    gap = NumericProperty(16.0)
    bar = NumericProperty(88.0)  # the bottom bar: languages and help
    portrait = NumericProperty(1)  # 1 in portrait, 0 in landscape (kv rules pick a layout)

    def update(self, width: float, height: float, dpi: float) -> None:
        short = min(width, height)
        # Grow with the screen, never below the 24 sp floor (the 7" Pi display sits at the floor).
        self.body = max(sp(MIN_BODY_SP), short / 26)
        # Small displays cannot afford big headings: they would push the instruction off screen.
        scale = 1.0 if short >= 720 else 0.85
        self.heading = self.body * 1.4 * scale
        self.title = self.body * 1.75 * scale
        self.touch = mm_to_px(MIN_TOUCH_MM, dpi)
        self.button = max(self.touch, self.body * 2.4)
        self.gap = max(8.0, short / 60)
        self.bar = self.button + 2 * self.gap
        self.portrait = 1 if height >= width else 0


sizes = Sizes()
