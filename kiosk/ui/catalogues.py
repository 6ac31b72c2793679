"""gettext catalogues: ``.po`` sources in the package, ``.mo`` compiled next to the data at start.

Compiled files are build output (git-ignored ``var/``); a catalogue is recompiled whenever its
source is newer, so a translator's edit shows up on the next start without a build step.
"""

from __future__ import annotations

import os
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "gerbang"
SOURCE_DIR = Path(__file__).resolve().parent.parent / "locale"


def po_path(language: str) -> Path:
    return SOURCE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalogues(out_dir: Path, languages: tuple[str, ...]) -> Path:
    """Compile each language's ``.po`` into ``out_dir`` if stale; returns ``out_dir``."""
    for language in languages:
        source = po_path(language)
        if not source.is_file():
            raise FileNotFoundError(f"missing translation catalogue {source}")
        target = out_dir / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as handle:
            catalog = read_po(handle, locale=language, domain=DOMAIN)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            write_mo(handle, catalog)
        partial.replace(target)  # a reader never sees half a catalogue
    return out_dir
