"""The measurable accessibility rules: contrast (WCAG 2.2), touch-target and text sizes.

No Kivy here, so the tests that hold the screens to these rules run without a window.
"""

from __future__ import annotations

from kiosk.ui.palette import rgba

MM_PER_INCH = 25.4
MIN_TOUCH_MM = 12.0
MIN_BODY_SP = 24.0
WCAG_AA_TEXT = 4.5


def mm_to_px(mm: float, dpi: float) -> float:
    return mm / MM_PER_INCH * dpi


def relative_luminance(hex_colour: str) -> float:
    """WCAG 2.2 relative luminance."""

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b, _ = rgba(hex_colour)
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(foreground: str, background: str) -> float:
    lighter, darker = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
