"""Kivy reads its environment once, at first import: set it up before anything imports Kivy."""

from __future__ import annotations

import os
from pathlib import Path


def prepare(data_dir: Path, *, offscreen: bool = False) -> None:
    """Keep Kivy's own files under the kiosk's data dir and leave the command line to us.

    ``offscreen`` renders without a display (screenshots, tests, CI): SDL's offscreen driver.
    """
    home = data_dir / "kivy"
    home.mkdir(parents=True, exist_ok=True)
    # Kivy must never write into ~/.kivy (read-only home on the kiosk) nor parse our argv.
    os.environ["KIVY_HOME"] = str(home)
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ.setdefault("MESA_SHADER_CACHE_DIR", str(home / "shader-cache"))  # Mesa: not ~/.cache either
    os.environ["KIVY_NO_CONSOLELOG"] = "1"  # our logging owns stderr
    os.environ["KIVY_NO_FILELOG"] = "1"
    os.environ.setdefault("KIVY_WINDOW", "sdl2")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    # SDL would turn SIGTERM into a window-close request, which a kiosk refuses; the service
    # manager's stop must still stop it, so the signal stays ours (see launch.run).
    os.environ["SDL_NO_SIGNAL_HANDLERS"] = "1"
    if offscreen:
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
