"""The kiosk's languages and the catalogue marker; no Kivy here, so build tools can use it."""

from __future__ import annotations

# Each language's name in its own script: a traveller must recognise theirs without reading ours.
LANGUAGES: dict[str, str] = {"id": "Bahasa Indonesia", "en": "English", "zh_CN": "中文"}


def N_(message: str) -> str:
    """Mark a message for the catalogue without translating it yet (looked up later)."""
    return message
