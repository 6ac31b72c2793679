"""Look at the camera: a mirrored live picture, the oval to fill, and what to change, as it happens."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from kivy.app import App
from kivy.clock import Clock, ClockEvent
from kivy.graphics.texture import Texture
from kivy.properties import NumericProperty, ObjectProperty, StringProperty

from kiosk.ui.i18n import tr
from kiosk.ui.languages import N_
from kiosk.ui.widgets import GateScreen
from models.matching import Guidance

PREVIEW_FPS = 15
GUIDANCE_TEXT: dict[str, str] = {
    Guidance.NO_FACE: N_("Stand in front of the camera"),
    Guidance.COME_CLOSER: N_("Please come a little closer"),
    Guidance.STEP_BACK: N_("Please step back a little"),
    Guidance.CENTRE_FACE: N_("Move so your face is inside the oval"),
    Guidance.LOOK_AT_CAMERA: N_("Look straight at the camera"),
    Guidance.HOLD_STILL: N_("Hold still"),
    Guidance.MORE_LIGHT: N_("It is too dark: please step into the light"),
    Guidance.TOO_BRIGHT: N_("It is too bright: please step out of the glare"),
    Guidance.REMOVE_SUNGLASSES: N_("Please take off your sunglasses"),
    Guidance.ONE_PERSON: N_("Only one person at a time, please"),
}
# Shown while the engine reports nothing to change (the face is being taken).
STEADY = N_("Hold still")
TIME_LEFT = N_("Time left: {seconds} s")


class CameraScreen(GateScreen):
    guidance = StringProperty("")
    seconds_left = StringProperty("")
    time_fraction = NumericProperty(1.0)
    preview = ObjectProperty(None, allownone=True)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._codes: tuple[str, ...] = (Guidance.LOOK_AT_CAMERA,)
        self._ticker: ClockEvent | None = None
        self._deadline = 0.0
        self._timeout_s = 1.0
        tr.on_switch(lambda _language: self._render())
        self._render()

    def show_guidance(self, codes: Sequence[str]) -> None:
        self._codes = tuple(codes)
        self._render()

    def _render(self) -> None:
        known = [c for c in self._codes if c in GUIDANCE_TEXT]
        # One instruction at a time: the engine lists the most important first.
        self.guidance = tr.gettext(GUIDANCE_TEXT[known[0]] if known else STEADY)
        self._render_clock()

    def on_pre_enter(self, *args: object) -> None:
        super().on_pre_enter(*args)
        app = App.get_running_app()
        self._timeout_s = app.config_model.flow.face_timeout_s
        self._deadline = Clock.get_time() + self._timeout_s
        self._ticker = Clock.schedule_interval(self._tick, 1 / PREVIEW_FPS)

    def on_leave(self, *args: object) -> None:
        super().on_leave(*args)
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.reset()

    def reset(self) -> None:
        self.preview = None  # the last face must not stay on screen
        self._codes = (Guidance.LOOK_AT_CAMERA,)
        self._render()

    def _tick(self, _dt: float) -> None:
        self._render_clock()
        frame = App.get_running_app().frames.take()
        if frame is not None:
            self.show_frame(frame.image)

    def _render_clock(self) -> None:
        remaining = max(0.0, self._deadline - Clock.get_time()) if self._deadline else self._timeout_s
        self.seconds_left = tr.gettext(TIME_LEFT).format(seconds=tr.number(round(remaining)))
        self.time_fraction = remaining / self._timeout_s

    def show_frame(self, image: np.ndarray) -> None:
        """Show an RGB frame as in a mirror: people move towards the side they mean to."""
        height, width = image.shape[:2]
        texture = self.preview
        if texture is None or texture.size != (width, height):
            texture = Texture.create(size=(width, height), colorfmt="rgb")
            # Camera rows run top to bottom, GL rows bottom to top; a mirror swaps left and right.
            texture.flip_vertical()
            texture.flip_horizontal()
        texture.blit_buffer(np.ascontiguousarray(image).tobytes(), colorfmt="rgb", bufferfmt="ubyte")
        self.preview = texture
        self.ids.live.canvas.ask_update()
