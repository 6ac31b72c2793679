"""Every screen, in every language and layout, rendered offscreen to PNG for review and the docs.

Screens are driven directly with representative content (the engine does not run), and saved
as ``<screen>-<language>-<layout>.png``. One layout per process: an offscreen window cannot
be resized reliably once it exists, so each layout gets a window made at its size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from config import Config
from kiosk.app import served_lane
from kiosk.flow.states import State
from kiosk.ui import launch
from kiosk.ui.languages import LANGUAGES
from models.matching import Guidance

log = logging.getLogger(__name__)

LAYOUTS: dict[str, tuple[int, int]] = {
    "portrait": (1080, 1920),
    "landscape": (1920, 1080),
    "pi7": (800, 480),  # the Raspberry Pi 7" touch display
}
SETTLE_FRAMES = 3  # frames for kv rules and text layout to settle after a change


def _preview_frame() -> np.ndarray:
    """A soft grey gradient standing in for a camera picture (the simulated camera's are blank)."""
    ys, xs = np.mgrid[0:48, 0:64]
    grey = (60 + xs + ys).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def scenes(app: object) -> dict[str, Callable[[], None]]:
    """Screen name -> how to put representative content on it."""
    from kiosk.pinlock import PinResult, PinVerdict
    from kiosk.ui.navigator import Screen

    a = app  # GerbangApp; typed loosely to keep Kivy out of this module's import
    screens = a.screens  # type: ignore[attr-defined]

    def show(screen: Screen, then: Callable[[], None] | None = None) -> Callable[[], None]:
        def scene() -> None:
            a.show(screen)  # type: ignore[attr-defined]
            if then is not None:
                then()

        return scene

    def camera() -> None:
        screens[Screen.CAMERA].show_guidance([Guidance.COME_CLOSER])
        screens[Screen.CAMERA].show_frame(_preview_frame())

    def maintenance() -> None:
        screens[Screen.MAINTENANCE]._show(
            {
                "in_service": True,
                "reason": None,
                "devices": [(n, "ok", "") for n in ("document_reader", "camera", "fingerprint", "gate")],
                "versions": dict(a.kiosk.engine.versions),  # type: ignore[attr-defined]
                "errors": [],
            }
        )

    return {
        "attract": show(Screen.ATTRACT),
        "place_passport": show(Screen.PLACE_PASSPORT),
        "reading": show(Screen.READING),
        "chip": show(Screen.CHIP),
        "chip_progress": show(Screen.CHIP, lambda: screens[Screen.CHIP].show_progress(0.6)),
        "document_problem": show(Screen.DOCUMENT_PROBLEM),
        "camera": show(Screen.CAMERA, camera),
        "fingerprint": show(Screen.FINGERPRINT),
        "processing": show(
            Screen.PROCESSING, lambda: screens[Screen.PROCESSING].show_state(State.FACE_MATCH)
        ),
        "go": show(Screen.GO),
        "officer": show(Screen.OFFICER),
        "feedback": show(Screen.FEEDBACK, lambda: screens[Screen.FEEDBACK].open_for(None)),
        "feedback_problem": show(Screen.FEEDBACK, lambda: screens[Screen.FEEDBACK].want_report()),
        "out_of_service": show(Screen.OUT_OF_SERVICE),
        "help": show(Screen.ATTRACT, lambda: a.help_overlay.show_for(60)),  # type: ignore[attr-defined]
        "inactivity": show(Screen.PLACE_PASSPORT, lambda: a.inactivity.start(10)),  # type: ignore[attr-defined]
        "pin": show(Screen.PIN, lambda: screens[Screen.PIN].show_result(PinResult(PinVerdict.WRONG, 2))),
        "maintenance": show(Screen.MAINTENANCE, maintenance),
        "training": show(Screen.ATTRACT, lambda: setattr(a, "training", True)),
    }


def render(
    config: Config,
    out: Path,
    layout: str,
    *,
    languages: tuple[str, ...] = tuple(LANGUAGES),
    only: tuple[str, ...] = (),
) -> list[Path]:
    """Render one layout to ``out`` in this process; returns the files written."""
    ui = config.ui.model_copy(update={"window_size": LAYOUTS[layout], "rotation": 0, "fullscreen": False})
    config = config.model_copy(update={"ui": ui})
    launch.prepare_kivy(config.data_dir, config.ui, offscreen=True)
    from kivy.clock import Clock
    from kivy.core.window import Window

    from kiosk.ui.app import GerbangApp
    from kiosk.ui.i18n import tr

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with launch.scratch_config(config) as scratch, served_lane(scratch) as lane:
        app = GerbangApp(replace(lane, world=None), speech_dir=out, serve=False)
        table = {}

        def steps() -> Iterator[None]:
            table.update(scenes(app))
            for language in languages:
                for name, scene in table.items():
                    if only and name not in only:
                        continue
                    app.back_to_start()
                    app.help_overlay.dismiss(animation=False)
                    app.inactivity.stop()
                    app.training = False
                    tr.switch(language)
                    scene()
                    for screen in app.screens.values():
                        for icon in screen.loops:
                            screen.ids[icon].still(0.3)  # mid-movement, and the same every time
                    for _ in range(SETTLE_FRAMES):
                        yield
                    target = out / f"{name}-{language}-{layout}.png"
                    saved = Path(Window.screenshot(str(out / "shot.png")))
                    saved.replace(target)
                    written.append(target)
            app.stop()

        driver = steps()

        def step(_dt: float) -> None:
            try:
                next(driver)
            except StopIteration:
                return
            Clock.schedule_once(step)

        Clock.schedule_once(step, 0.1)
        app.run()
    return written
