"""Colours. Every text colour is used only on the background it is paired with here, so the
contrast test over :data:`TEXT_PAIRS` covers everything a traveller reads."""

from __future__ import annotations


def rgba(hex_colour: str) -> tuple[float, float, float, float]:
    value = hex_colour.lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return (r, g, b, 1.0)


# Named colours (hex for people, RGBA tuples for Kivy below).
HEX = {
    "page": "#0B1F3A",  # deep navy: the calm default background
    "ink": "#FFFFFF",
    "ink_soft": "#C8D6EA",
    "panel": "#15305A",
    "accent": "#FFD23F",  # primary action: yellow, dark text
    "accent_ink": "#0B1F3A",
    "lang": "#23406B",
    "lang_ink": "#FFFFFF",
    "lang_on": "#FFFFFF",
    "lang_on_ink": "#0B1F3A",
    "help": "#FF9F1C",  # orange, never red: help is not an emergency
    "help_ink": "#111111",
    "go": "#0E6B2E",
    "go_ink": "#FFFFFF",
    "officer": "#EEF2F7",  # neutral and light: a referral must not look like an alarm
    "officer_ink": "#0B1F3A",
    "closed": "#3A3F47",
    "closed_ink": "#FFFFFF",
    "training": "#FFD400",
    "training_ink": "#000000",
    "overlay": "#FFFFFF",
    "overlay_ink": "#0B1F3A",
    "secondary": "#DCE4EF",
    "secondary_ink": "#0B1F3A",
    "problem": "#FFE9B3",
    "problem_ink": "#3D2A00",
}

# (text, background) pairs that appear on screen.
TEXT_PAIRS: tuple[tuple[str, str], ...] = (
    ("ink", "page"),
    ("ink_soft", "page"),
    ("ink", "panel"),
    ("ink_soft", "panel"),
    ("accent_ink", "accent"),
    ("lang_ink", "lang"),
    ("lang_on_ink", "lang_on"),
    ("help_ink", "help"),
    ("go_ink", "go"),
    ("officer_ink", "officer"),
    ("closed_ink", "closed"),
    ("training_ink", "training"),
    ("overlay_ink", "overlay"),
    ("secondary_ink", "secondary"),
    ("problem_ink", "problem"),
    ("accent", "page"),
)


class _Colours:
    def __getattr__(self, name: str) -> tuple[float, float, float, float]:
        try:
            return rgba(HEX[name])
        except KeyError:
            raise AttributeError(name) from None


colours = _Colours()
