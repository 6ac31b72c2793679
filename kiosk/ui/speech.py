"""Optional spoken prompts (``ui.spoken_prompts``): one pre-rendered WAV per screen and language.

``python -m kiosk.ui.speech OUT_DIR`` renders them with espeak-ng at build time (into the data
dir, ``var/speech`` by default). At run time a missing file, a missing audio device or a disabled
switch all mean silence: the screens carry every instruction in words anyway.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from kiosk.ui.languages import LANGUAGES, N_
from kiosk.ui.navigator import Screen

log = logging.getLogger(__name__)

# What is said when a screen appears: its main instruction, the same words as on the screen.
PROMPTS: dict[Screen, str] = {
    Screen.PLACE_PASSPORT: N_("Place your passport on the reader"),
    Screen.DOCUMENT_PROBLEM: N_("Please place your passport again"),
    Screen.CHIP: N_("Keep your passport on the reader"),
    Screen.CAMERA: N_("Look at the camera"),
    Screen.FINGERPRINT: N_("Place your finger on the sensor"),
    Screen.GO: N_("Please go ahead"),
    Screen.OFFICER: N_("Please see an officer"),
    Screen.OUT_OF_SERVICE: N_("This gate is closed"),
}
VOICES = {"id": "id", "en": "en", "zh_CN": "cmn"}


def prompt_path(root: Path, language: str, screen: Screen) -> Path:
    return root / language / f"{screen}.wav"


class Speaker:
    def __init__(self, root: Path, enabled: bool) -> None:
        self.root = root
        self.enabled = enabled
        self._sound: object | None = None

    def say(self, screen: Screen, language: str) -> None:
        if not self.enabled or screen not in PROMPTS:
            return
        path = prompt_path(self.root, language, screen)
        if not path.is_file():
            return
        from kivy.core.audio import SoundLoader

        sound = SoundLoader.load(str(path))
        if sound is None:  # no audio output on this machine
            return
        if self._sound is not None:
            self._sound.stop()  # type: ignore[attr-defined]
        self._sound = sound
        sound.play()


def render(out_dir: Path, mo_dir: Path) -> int:
    """Render every prompt in every language with espeak-ng; returns how many files were written."""
    from kiosk.ui.i18n import tr

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    tr.load(mo_dir)
    written = 0
    for language in LANGUAGES:
        tr.switch(language)
        for screen, message in PROMPTS.items():
            path = prompt_path(out_dir, language, screen)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = tr.gettext(message)
            subprocess.run(
                [espeak, "-v", VOICES[language], "-s", "140", "-w", str(path), text], check=True, timeout=60
            )
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    from kiosk.ui import environment
    from kiosk.ui.catalogues import compile_catalogues

    parser = argparse.ArgumentParser(prog="python -m kiosk.ui.speech", description=__doc__)
    parser.add_argument("out", type=Path, nargs="?", default=Path("var/speech"))
    args = parser.parse_args(argv)
    environment.prepare(args.out.parent, offscreen=True)
    mo_dir = compile_catalogues(args.out.parent / "locale", tuple(LANGUAGES))
    count = render(args.out, mo_dir)
    print(f"{count} prompts written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
