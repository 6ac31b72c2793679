"""Starting the touchscreen: environment, fonts, catalogues, then the app on a served lane.

The lane itself (kiosk, run loop, simulated world) is built by the composition root
(``kiosk.app.served_lane``); this module only prepares Kivy and shows it.
"""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config import Config, DevicesSection, UiSection
from kiosk.app import served_lane
from kiosk.ui import environment
from kiosk.ui.catalogues import compile_catalogues
from kiosk.ui.languages import LANGUAGES


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


def run(config: Config, *, db: Path | None, seed: int, offscreen: bool = False) -> int:
    started = time.monotonic()
    prepare_kivy(config.data_dir, config.ui, offscreen=offscreen)
    from kivy.clock import Clock

    from kiosk.ui.app import GerbangApp

    with served_lane(config, db=db, seed=seed) as lane:
        app = GerbangApp(lane, speech_dir=config.data_dir / "speech", started_at=started)
        # A service stop ends the app through its own stop: the engine is released, doors secured.
        signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda _dt: app.stop()))
        app.run()
    # Set when the hub asked for a restart or a reboot: the service manager acts on the code.
    return lane.runner.exit_code or 0


def simulated_config(config: Config) -> Config:
    """``config`` with every device simulated (``run --simulate``)."""
    return config.model_copy(update={"devices": DevicesSection()})


@contextmanager
def scratch_config(config: Config) -> Iterator[Config]:
    """``config`` with its data in a throw-away directory (screenshots must not touch the lane's)."""
    with tempfile.TemporaryDirectory(prefix="gerbang-ui-") as tmp:
        yield config.model_copy(update={"kiosk": config.kiosk.model_copy(update={"data_dir": Path(tmp)})})
