"""Pictures drawn with canvas instructions: no image files to ship, sharp at any size.

Each icon redraws itself from its own size, so the same icon serves the 7" display and a 32"
portrait screen. Pictures say what to do; the words next to them say it again (never one alone).
"""

from __future__ import annotations

import math

from kivy.clock import Clock, ClockEvent
from kivy.graphics import Color, Ellipse, Line, Rectangle, RoundedRectangle, Triangle
from kivy.properties import ListProperty, NumericProperty
from kivy.uix.widget import Widget

from kiosk.ui.palette import colours

PASSPORT = (0.45, 0.10, 0.16, 1)  # a passport-like maroon
GOLD = (0.93, 0.78, 0.35, 1)
READER = (0.80, 0.85, 0.92, 1)
GLASS = (0.25, 0.55, 0.85, 1)
SKIN = (0.93, 0.76, 0.62, 1)
FPS = 20  # enough for these slow loops, and cheap on a Pi
REST_S = 0.6  # each loop pauses at its end so the finished picture can be seen


class Icon(Widget):
    """Base: call :meth:`draw` whenever size, position or an animated property changes."""

    phase = NumericProperty(0.0)  # 0..1, driven by looping animations
    tint = ListProperty([1, 1, 1, 1])

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._ticker: ClockEvent | None = None
        self.bind(pos=self._redraw, size=self._redraw, phase=self._redraw, tint=self._redraw)

    def _redraw(self, *_args: object) -> None:
        self.canvas.clear()
        with self.canvas:
            self.draw()

    @property
    def box(self) -> tuple[float, float, float]:
        """Centre x, centre y and the side of the largest square that fits."""
        side = min(self.width, self.height)
        return self.center_x, self.center_y, side

    def draw(self) -> None:
        raise NotImplementedError

    def loop(self, period_s: float) -> None:
        """Run ``phase`` from 0 to 1 every ``period_s`` seconds (plus a short rest), until :meth:`still`."""
        self.still(0.0)
        started = Clock.get_time()
        cycle = period_s + REST_S

        def tick(_dt: float) -> None:
            self.phase = min(1.0, ((Clock.get_time() - started) % cycle) / period_s)

        self._ticker = Clock.schedule_interval(tick, 1 / FPS)

    def still(self, phase: float = 1.0) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.phase = phase


def _passport(x: float, y: float, w: float, h: float) -> None:
    Color(*PASSPORT)
    RoundedRectangle(pos=(x, y), size=(w, h), radius=[w * 0.08])
    Color(*GOLD)
    Line(circle=(x + w / 2, y + h * 0.58, w * 0.2), width=max(1.5, w * 0.03))
    Rectangle(pos=(x + w * 0.25, y + h * 0.2), size=(w * 0.5, h * 0.05))


def _reader(x: float, y: float, w: float, h: float) -> None:
    Color(*READER)
    RoundedRectangle(pos=(x, y), size=(w, h), radius=[h * 0.2])
    Color(*GLASS)
    RoundedRectangle(pos=(x + w * 0.1, y + h * 0.3), size=(w * 0.8, h * 0.45), radius=[h * 0.1])


def _arrow_down(cx: float, top: float, length: float, colour: tuple[float, ...]) -> None:
    Color(*colour)
    Line(points=[cx, top, cx, top - length], width=max(2.0, length * 0.08))
    head = length * 0.35
    Triangle(
        points=[
            cx - head,
            top - length + head * 0.6,
            cx + head,
            top - length + head * 0.6,
            cx,
            top - length - head * 0.5,
        ]
    )


def _face(cx: float, cy: float, r: float, mood: float = 1.0) -> None:
    Color(*SKIN)
    Ellipse(pos=(cx - r, cy - r * 1.2), size=(2 * r, 2.4 * r))
    Color(0.1, 0.1, 0.1, 1)
    for dx in (-0.38, 0.38):
        Ellipse(pos=(cx + dx * r - r * 0.1, cy + r * 0.2), size=(r * 0.2, r * 0.24))
    _mouth(cx, cy - r * 0.45, r * 0.5, mood, max(1.5, r * 0.07))


def _mouth(cx: float, cy: float, half: float, mood: float, width: float) -> None:
    """A smile (mood 1) through a flat line (0) to a frown (-1)."""
    points = []
    for i in range(13):
        t = -1 + i / 6
        points += [cx + t * half, cy - mood * half * 0.5 * (1 - t * t)]
    Line(points=points, width=width)


class PlacePassportIcon(Icon):
    """A passport comes down, photo page first, onto the reader's glass."""

    def draw(self) -> None:
        cx, cy, side = self.box
        rw, rh = side * 0.8, side * 0.22
        _reader(cx - rw / 2, cy - side * 0.45, rw, rh)
        lift = (1 - min(1.0, self.phase * 1.4)) * side * 0.35
        pw, ph = side * 0.42, side * 0.55
        _passport(cx - pw / 2, cy - side * 0.38 + lift, pw, ph)
        if lift > side * 0.08:
            _arrow_down(cx + side * 0.38, cy + side * 0.35, side * 0.3, colours.accent)


class ReadingIcon(Icon):
    """The passport on the glass with a light sweeping along it: reading."""

    def draw(self) -> None:
        cx, cy, side = self.box
        rw, rh = side * 0.8, side * 0.22
        x0 = cx - rw / 2
        _reader(x0, cy - side * 0.45, rw, rh)
        pw, ph = side * 0.42, side * 0.55
        _passport(cx - pw / 2, cy - side * 0.38, pw, ph)
        Color(*colours.accent)
        sweep = x0 + rw * 0.1 + rw * 0.8 * self.phase
        Line(points=[sweep, cy - side * 0.42, sweep, cy - side * 0.3], width=max(2.0, side * 0.015))


class ChipIcon(Icon):
    """The passport lying face down on the reader while waves from the glass read its chip.

    Under the reader, a bar fills as far as the engine says the read got (``fraction`` 0..1);
    below 0 the engine says nothing, and a segment sweeps instead: never an invented percentage.
    """

    fraction = NumericProperty(-1.0)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bind(fraction=self._redraw)

    def draw(self) -> None:
        cx, cy, side = self.box
        rw, rh = side * 0.8, side * 0.22
        reader_y = cy - side * 0.4
        _reader(cx - rw / 2, reader_y, rw, rh)
        pw, ph = side * 0.42, side * 0.55
        _passport(cx - pw / 2, cy - side * 0.33, pw, ph)
        # Three arcs rise from the glass and fade as they go, clear of the passport's edges.
        for i in range(3):
            travel = (self.phase + i / 3) % 1.0
            Color(*colours.accent[:3], 1 - travel * 0.8)
            radius = side * (0.55 + 0.2 * travel)
            Line(circle=(cx, reader_y + rh / 2, radius, -32, 32), width=max(2.0, side * 0.018))
        self._bar(cx - rw / 2, cy - side * 0.5, rw, side * 0.045)

    def _bar(self, x: float, y: float, w: float, h: float) -> None:
        Color(*colours.panel)
        RoundedRectangle(pos=(x, y), size=(w, h), radius=[h / 2])
        if self.fraction >= 0:
            start, end = x, x + w * min(1.0, self.fraction)
        else:
            segment = w * 0.3
            head = x - segment + (w + segment) * self.phase
            start, end = max(x, head), min(x + w, head + segment)
        if end - start >= h:  # narrower than its own roundness it would draw as a blot
            Color(*colours.accent)
            RoundedRectangle(pos=(start, y), size=(end - start, h), radius=[h / 2])


class ProblemIcon(Icon):
    """The passport lifted off and put back the right way: try again."""

    def draw(self) -> None:
        cx, cy, side = self.box
        rw, rh = side * 0.8, side * 0.22
        _reader(cx - rw / 2, cy - side * 0.45, rw, rh)
        pw, ph = side * 0.42, side * 0.55
        wobble = math.sin(self.phase * math.pi * 2) * side * 0.04
        _passport(cx - pw / 2 + wobble, cy - side * 0.3, pw, ph)
        Color(*colours.accent)
        r = side * 0.16
        Line(circle=(cx + side * 0.36, cy + side * 0.3, r, 20, 320), width=max(2.0, side * 0.02))
        tip_x, tip_y = cx + side * 0.36 + r, cy + side * 0.3
        Triangle(points=[tip_x - r * 0.35, tip_y, tip_x + r * 0.35, tip_y, tip_x, tip_y - r * 0.45])


class FingerIcon(Icon):
    """A finger comes down flat onto the sensor."""

    def draw(self) -> None:
        cx, cy, side = self.box
        sw, sh = side * 0.5, side * 0.16
        Color(*READER)
        RoundedRectangle(pos=(cx - sw / 2, cy - side * 0.45), size=(sw, sh), radius=[sh * 0.2])
        Color(*GLASS)
        RoundedRectangle(pos=(cx - sw * 0.3, cy - side * 0.42), size=(sw * 0.6, sh * 0.7), radius=[sh * 0.2])
        lift = (1 - min(1.0, self.phase * 1.4)) * side * 0.3
        fw, fh = side * 0.2, side * 0.55
        Color(*SKIN)
        RoundedRectangle(pos=(cx - fw / 2, cy - side * 0.31 + lift), size=(fw, fh), radius=[fw / 2])
        Color(0.85, 0.66, 0.55, 1)
        Line(ellipse=(cx - fw * 0.32, cy - side * 0.27 + lift, fw * 0.64, fh * 0.22), width=1.5)
        if lift > side * 0.06:
            _arrow_down(cx + side * 0.34, cy + side * 0.35, side * 0.28, colours.accent)


class FaceGuide(Icon):
    """The oval the face should fill; the preview image lies underneath."""

    def draw(self) -> None:
        cx, cy, side = self.box
        Color(*self.tint)
        Line(ellipse=(cx - side * 0.3, cy - side * 0.4, side * 0.6, side * 0.8), width=max(3.0, side * 0.015))


class CameraIcon(Icon):
    """A face looking at the camera above it."""

    def draw(self) -> None:
        cx, cy, side = self.box
        Color(*READER)
        RoundedRectangle(
            pos=(cx - side * 0.12, cy + side * 0.32), size=(side * 0.24, side * 0.12), radius=[6]
        )
        Color(*GLASS)
        Ellipse(pos=(cx - side * 0.04, cy + side * 0.34), size=(side * 0.08, side * 0.08))
        _face(cx, cy - side * 0.08, side * 0.22)


class ProcessingIcon(Icon):
    """Dots going round: the machine is working, nothing to do."""

    def draw(self) -> None:
        cx, cy, side = self.box
        r = side * 0.3
        for i in range(8):
            angle = 2 * math.pi * (i / 8 - self.phase)
            weight = (i + 1) / 8
            Color(1, 1, 1, 0.25 + 0.75 * weight)
            dot = side * 0.05 * (0.6 + 0.4 * weight)
            Ellipse(
                pos=(cx + r * math.cos(angle) - dot, cy + r * math.sin(angle) - dot), size=(2 * dot, 2 * dot)
            )


class GoIcon(Icon):
    """A big arrow pointing ahead, through the open gate."""

    def draw(self) -> None:
        cx, cy, side = self.box
        Color(*self.tint)
        Line(circle=(cx, cy, side * 0.46), width=max(3.0, side * 0.03))
        shaft = side * 0.13
        Rectangle(pos=(cx - shaft / 2, cy - side * 0.3), size=(shaft, side * 0.35))
        Triangle(
            points=[
                cx - side * 0.25,
                cy + side * 0.02,
                cx + side * 0.25,
                cy + side * 0.02,
                cx,
                cy + side * 0.32,
            ]
        )


class OfficerIcon(Icon):
    """A person in a cap: an officer, friendly, not an alarm."""

    def draw(self) -> None:
        cx, cy, side = self.box
        Color(*self.tint)
        head = side * 0.16
        Ellipse(pos=(cx - head, cy + side * 0.02), size=(2 * head, 2 * head))
        RoundedRectangle(
            pos=(cx - side * 0.3, cy - side * 0.42),
            size=(side * 0.6, side * 0.4),
            radius=[side * 0.15, side * 0.15, 0, 0],
        )
        Rectangle(pos=(cx - head * 1.2, cy + side * 0.02 + head * 1.5), size=(head * 2.4, head * 0.45))


class ClosedIcon(Icon):
    """A lowered barrier with an arrow to the staffed counter."""

    def draw(self) -> None:
        cx, cy, side = self.box
        Color(*self.tint)
        Rectangle(pos=(cx - side * 0.42, cy - side * 0.4), size=(side * 0.08, side * 0.55))
        bar_y = cy + side * 0.05
        for i in range(4):
            Color(*(self.tint if i % 2 == 0 else colours.accent))
            Rectangle(pos=(cx - side * 0.34 + i * side * 0.19, bar_y), size=(side * 0.19, side * 0.08))
        Color(*colours.accent)
        y = cy - side * 0.25
        Line(points=[cx - side * 0.2, y, cx + side * 0.25, y], width=max(2.0, side * 0.03))
        Triangle(
            points=[cx + side * 0.22, y + side * 0.1, cx + side * 0.22, y - side * 0.1, cx + side * 0.42, y]
        )


class HelpIcon(Icon):
    """A raised hand: asking for someone."""

    def draw(self) -> None:
        cx, cy, side = self.box
        Color(*self.tint)
        palm = side * 0.36
        RoundedRectangle(pos=(cx - palm / 2, cy - side * 0.38), size=(palm, side * 0.42), radius=[palm * 0.3])
        finger = palm / 4.6
        for i, length in enumerate((0.3, 0.38, 0.36, 0.3)):
            x = cx - palm / 2 + finger * 0.3 + i * finger * 1.1
            RoundedRectangle(pos=(x, cy), size=(finger, side * length), radius=[finger / 2])
        RoundedRectangle(
            pos=(cx - palm / 2 - finger * 1.2, cy - side * 0.18),
            size=(finger * 1.1, side * 0.26),
            radius=[finger / 2],
        )


class RatingFace(Icon):
    """One of the five rating faces; ``mood`` -1 (very unhappy) to 1 (very happy)."""

    mood = NumericProperty(0.0)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bind(mood=self._redraw)

    def draw(self) -> None:
        cx, cy, side = self.box
        r = side * 0.45
        Color(*self.tint)
        Ellipse(pos=(cx - r, cy - r), size=(2 * r, 2 * r))
        Color(0.1, 0.1, 0.1, 1)
        for dx in (-0.35, 0.35):
            Ellipse(pos=(cx + dx * r - r * 0.09, cy + r * 0.18), size=(r * 0.18, r * 0.24))
        _mouth(cx, cy - r * 0.35, r * 0.5, self.mood, max(2.0, r * 0.08))


class HowToIcon(Icon):
    """The three steps of the automatic gate, lit in turn: passport, face, walk through.

    The steps run along the longer side, so they stay large in a narrow landscape column.
    """

    def draw(self) -> None:
        step = min(2, int(self.phase * 3))
        across = self.width >= self.height
        size = (min(self.width / 3, self.height) if across else min(self.height / 3, self.width)) * 0.9
        for i in range(3):
            if across:
                x, y = self.x + self.width * (i + 0.5) / 3, self.center_y
            else:
                x, y = self.center_x, self.top - self.height * (i + 0.5) / 3
            self._step(i, x, y, size, lit=i == step)

    def _step(self, i: int, x: float, y: float, size: float, lit: bool) -> None:
        Color(*(colours.accent if lit else colours.panel))
        RoundedRectangle(pos=(x - size / 2, y - size / 2), size=(size, size), radius=[size * 0.12])
        small = size * 0.8
        if i == 0:
            _reader(x - small * 0.4, y - small * 0.4, small * 0.8, small * 0.2)
            _passport(x - small * 0.18, y - small * 0.3, small * 0.36, small * 0.48)
        elif i == 1:
            _face(x, y, small * 0.22)
        else:
            Color(*(colours.accent_ink if lit else colours.ink))
            Rectangle(pos=(x - small * 0.36, y - small * 0.35), size=(small * 0.08, small * 0.7))
            Rectangle(pos=(x + small * 0.28, y - small * 0.35), size=(small * 0.08, small * 0.7))
            shaft = small * 0.1
            Rectangle(pos=(x - shaft / 2, y - small * 0.3), size=(shaft, small * 0.3))
            Triangle(points=[x - small * 0.18, y, x + small * 0.18, y, x, y + small * 0.28])
