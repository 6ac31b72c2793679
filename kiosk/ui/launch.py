"""Starting the touchscreen: environment, fonts, catalogues, the lane, then the app."""

from __future__ import annotations

import logging
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from common.clock import SimulatedClock
from config import Config, DevicesSection, UiSection
from kiosk.app import Kiosk, build_kiosk
from kiosk.remote import EXIT_CODES
from kiosk.ui import environment
from kiosk.ui.catalogues import compile_catalogues
from kiosk.ui.languages import LANGUAGES

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from kiosk.ui.world import SimulatedWorld


def prepare_kivy(var_dir: Path, ui: UiSection, *, offscreen: bool, cache_dir: Path | None = None) -> None:
    """Everything Kivy must know before its window exists; then fonts and catalogues.

    ``cache_dir`` (default ``var_dir``) holds what is derived from the sources: the extracted
    font and the compiled catalogues.
    """
    cache = var_dir if cache_dir is None else cache_dir
    environment.prepare(var_dir, offscreen=offscreen)
    from kivy.config import Config as KivyConfig

    width, height = ui.window_size
    if ui.rotation in (90, 270):
        width, height = height, width  # the panel is mounted turned; the window is the panel
    KivyConfig.set("graphics", "fullscreen", "auto" if ui.fullscreen and not offscreen else "0")
    KivyConfig.set("graphics", "width", str(width))
    KivyConfig.set("graphics", "height", str(height))
    KivyConfig.set("graphics", "show_cursor", "0")
    KivyConfig.set("kivy", "exit_on_escape", "0")  # Escape is ours: swallowed outside maintenance
    KivyConfig.set("input", "mouse", "mouse,disable_multitouch")

    from kiosk.ui import fonts
    from kiosk.ui.i18n import tr

    fonts.register(cache / "fonts")
    tr.load(compile_catalogues(cache / "locale", tuple(LANGUAGES)))


@contextmanager
def ui_kiosk(config: Config, db: Path | None, seed: int) -> Iterator[tuple[Kiosk, SimulatedWorld | None]]:
    """The lane for the screens: on in-process devices, at human pace and with a world to populate."""
    from kiosk.ui.realtime import RealTimeLane
    from kiosk.ui.world import SimulatedWorld

    lane = RealTimeLane(SimulatedClock(), config.ui.simulated_device_delay_s)
    kiosk = build_kiosk(config, store_path=db, lane=lane)
    try:
        kiosk.engine.start()
        world = SimulatedWorld(kiosk, seed) if config.simulated else None
        yield kiosk, world
    finally:
        kiosk.close()


def run(config: Config, *, db: Path | None, seed: int, offscreen: bool = False) -> int:
    started = time.monotonic()
    prepare_kivy(config.data_dir, config.ui, offscreen=offscreen)
    from kivy.clock import Clock

    from kiosk.ui.app import GerbangApp

    with ui_kiosk(config, db, seed) as (kiosk, world):
        app = GerbangApp(kiosk, world=world, speech_dir=config.data_dir / "speech", started_at=started)
        # A service stop ends the app through its own stop: the engine is released, doors secured.
        signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda _dt: app.stop()))
        app.run()
    if app.restart_requested is not None:
        log.warning("stopping for a restart requested by the hub (%s)", app.restart_requested)
        return EXIT_CODES[app.restart_requested]
    return 0


def simulated_config(config: Config) -> Config:
    """``config`` with every device simulated (``run --simulate``)."""
    return config.model_copy(update={"devices": DevicesSection()})


@contextmanager
def scratch_config(config: Config) -> Iterator[Config]:
    """``config`` with its data in a throw-away directory (screenshots must not touch the lane's)."""
    with tempfile.TemporaryDirectory(prefix="gerbang-ui-") as tmp:
        yield config.model_copy(update={"kiosk": config.kiosk.model_copy(update={"data_dir": Path(tmp)})})
