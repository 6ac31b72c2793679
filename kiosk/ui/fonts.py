"""One font for every language: Noto Sans CJK (Debian ``fonts-noto-cjk``) covers Latin and Han.

Debian ships it as a TrueType collection; SDL_ttf (Kivy's text renderer) opens only the first face
of a collection, which is the Japanese one, whose glyphs differ from Simplified Chinese in shared
characters. The Simplified Chinese face is therefore copied out once into the data dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from fontTools.ttLib import TTCollection

COLLECTION_DIR = Path("/usr/share/fonts/opentype/noto")
FAMILY = "Noto Sans CJK SC"
WEIGHTS = ("Regular", "Bold")


class FontMissing(RuntimeError):
    pass


def extract_faces(out_dir: Path, collection_dir: Path = COLLECTION_DIR) -> dict[str, Path]:
    """The Simplified Chinese faces as single-font files (cached), by weight."""
    faces: dict[str, Path] = {}
    for weight in WEIGHTS:
        target = out_dir / f"NotoSansCJKsc-{weight}.otf"
        faces[weight] = target
        if target.is_file():
            continue
        source = collection_dir / f"NotoSansCJK-{weight}.ttc"
        if not source.is_file():
            raise FontMissing(
                f"font {source} is missing: install Debian's fonts-noto-cjk "
                "(apt-get install fonts-noto-cjk); the screens need it for Chinese"
            )
        face = next((f for f in TTCollection(str(source)).fonts if f["name"].getDebugName(1) == FAMILY), None)
        if face is None:
            raise FontMissing(f"{source} has no {FAMILY!r} face")
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")  # another process may be at it too
        face.save(str(partial))
        partial.replace(target)
    return faces


def register(out_dir: Path) -> None:
    """Make the CJK face Kivy's default font, so every label uses it."""
    from kivy.core.text import DEFAULT_FONT, LabelBase

    faces = extract_faces(out_dir)
    LabelBase.register(DEFAULT_FONT, fn_regular=str(faces["Regular"]), fn_bold=str(faces["Bold"]))
