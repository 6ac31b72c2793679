"""The UI's decisions that need no window: colours, screen choice, the [ui] config (the PIN lock:
test_maintenance_pin.py)."""

from __future__ import annotations

import time

import pytest

from config import Config, ConfigError, load_config
from kiosk.flow.states import State
from kiosk.ui.accessibility import WCAG_AA_TEXT, contrast_ratio, mm_to_px
from kiosk.ui.palette import HEX, TEXT_PAIRS


@pytest.mark.parametrize(("text", "background"), TEXT_PAIRS)
def test_every_text_colour_pair_meets_wcag_aa(text, background):
    assert contrast_ratio(HEX[text], HEX[background]) >= WCAG_AA_TEXT


def test_no_kivy_needed_for_these_rules():
    import sys

    assert "kivy" not in sys.modules  # these checks must run anywhere, without a window


def test_contrast_formula_matches_wcag_reference_values():
    assert contrast_ratio("#FFFFFF", "#000000") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#FFFFFF") == pytest.approx(4.48, abs=0.01)  # the famous near-miss


def test_every_colour_a_screen_uses_for_text_is_in_a_checked_pair():
    inks = {name for name in HEX if name.endswith("_ink") or name in ("ink", "ink_soft")}
    assert inks <= {text for text, _ in TEXT_PAIRS}


@pytest.mark.parametrize(
    ("state", "current", "expected"),
    [
        (State.DOCUMENT_READ, "attract", "reading"),
        (State.DOCUMENT_READ, "feedback", "reading"),  # a new traveller never waits for the rating
        (State.DOCUMENT_PROBLEM, "reading", "document_problem"),
        (State.CHIP_READ, "processing", "chip"),  # the passport stays on the reader for its chip
        (State.FACE_CAPTURE, "chip", "camera"),
        (State.CHIP_READ, "maintenance", None),
        (State.FACE_CAPTURE, "processing", "camera"),
        (State.FACE_MATCH, "camera", "processing"),
        (State.ENTRY_OPEN, "processing", "go"),
        (State.DONE, "go", None),  # go ahead stays, then the rating
        (State.IDLE, "go", None),
        (State.REFERRED, "processing", "officer"),
        (State.IDLE, "officer", None),
        (State.ABANDONED, "camera", "attract"),
        (State.ABANDONED, "officer", None),  # they chose the counter
        (State.OUT_OF_SERVICE, "camera", "out_of_service"),
        (State.IDLE, "out_of_service", "attract"),
        (State.IDLE, "place_passport", None),
        (State.OUT_OF_SERVICE, "maintenance", None),  # staff screens are not taken away
        (State.DOCUMENT_READ, "pin", None),
    ],
)
def test_screen_follows_the_engine(state, current, expected):
    from kiosk.ui.navigator import Screen, screen_for

    target = screen_for(state, Screen(current))
    assert (str(target) if target else None) == expected


def test_every_state_has_a_screen():
    from kiosk.ui.navigator import Screen, screen_for

    for state in State:
        screen_for(state, Screen.ATTRACT)  # no KeyError


def test_ui_section_defaults_and_checks(tmp_path):
    ui = Config().ui
    assert ui.dpi == 96 and ui.rotation == 0 and ui.language == "id" and not ui.spoken_prompts
    file = tmp_path / "kiosk.toml"
    file.write_text("[ui]\nrotation = 45\n")
    with pytest.raises(ConfigError, match=r"ui\.rotation"):
        load_config(file)
    file.write_text("[ui]\nrotation = 90\n")
    assert load_config(file).ui.rotation == 90


def test_touch_target_size_follows_the_display_density():
    assert mm_to_px(12, 96) == pytest.approx(45.35, abs=0.01)
    assert mm_to_px(12, 160) == pytest.approx(75.59, abs=0.01)


def test_real_time_lane_waits_for_real(tmp_path):
    from common.clock import SimulatedClock
    from kiosk.simulation.realtime import RealTimeLane

    lane = RealTimeLane(SimulatedClock(), device_delay_s=0.2)
    begun = time.monotonic()
    lane.wait(0.1)
    lane.work()
    assert time.monotonic() - begun >= 0.3


def test_missing_cjk_font_is_a_clear_error(tmp_path):
    from kiosk.ui.fonts import FontMissing, extract_faces

    with pytest.raises(FontMissing, match="fonts-noto-cjk"):
        extract_faces(tmp_path / "out", collection_dir=tmp_path)
