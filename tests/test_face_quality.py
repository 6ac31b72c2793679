"""Capture quality and guidance: real LFW faces made too small, cut off, doubled, blurred, dark, bright."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drivers.simulated.lane import camera_view
from models import align, quality
from models.matching import FaceObservation, Guidance
from models.pipeline import FaceAnalysis
from models.quality import QualityThresholds
from tests.lfw import lfw_dir
from tests.test_face_pipeline import GENUINE, OTHER, frame_of, matcher, observe, photo
from tests.test_models_convert import read_rgb

FACE = GENUINE[0]


def analyse(frame: np.ndarray) -> FaceAnalysis:
    return matcher().pipeline.analyse(frame, matcher().settings)


def assert_guided(frame: np.ndarray, *codes: Guidance) -> FaceObservation:
    """The matcher's own verdict on ``frame``: not acquired, these codes, nothing kept."""
    observation = observe(frame)
    assert not observation.acquired and observation.guidance == codes, observation.quality
    assert observation.handle is None and observation.face_present == (Guidance.NO_FACE not in codes)
    return observation


@pytest.mark.needs_lfw
def test_a_good_frame_is_acquired_with_its_measures():
    analysis = analyse(frame_of(photo(FACE)))
    assert analysis.acquired and analysis.guidance == () and analysis.chip is not None
    q = analysis.quality
    assert 120 < q["face_px"] < 200 and q["centre_offset"] < 0.1 and q["in_frame"] == 1.0
    assert abs(q["roll_deg"]) < 5 and abs(q["yaw"]) < 0.1 and q["faces"] == 1
    assert 0 < q["quality"] <= 1
    assert set(analysis.timings_ms) == {"detect", "landmarks", "align", "quality"}


@pytest.mark.needs_lfw
def test_too_small_face_is_told_to_come_closer():
    analysis = assert_guided(frame_of(photo(FACE), scale=0.8), Guidance.COME_CLOSER)
    assert analysis.quality["face_px"] < QualityThresholds().min_face_px


@pytest.mark.needs_lfw
def test_too_large_face_is_told_to_step_back():
    assert_guided(frame_of(photo(FACE), scale=4.5), Guidance.STEP_BACK)


@pytest.mark.needs_lfw
def test_face_cut_off_at_the_edge_or_off_centre_is_told_to_centre():
    cut = assert_guided(frame_of(photo(FACE), dx=-310), Guidance.CENTRE_FACE)  # about 40% out of frame
    assert cut.quality["in_frame"] < QualityThresholds().min_in_frame
    aside = assert_guided(frame_of(photo(FACE), dx=-200), Guidance.CENTRE_FACE)  # whole, but aside
    assert aside.quality["in_frame"] == 1.0


@pytest.mark.needs_lfw
def test_two_similar_faces_mean_one_person_only():
    frame = np.full((480, 640, 3), 96, np.uint8)
    for left, name in ((10, FACE), (330, OTHER[0])):
        frame[90:390, left : left + 300] = cv2.resize(photo(name), (300, 300))
    observation = assert_guided(frame, Guidance.ONE_PERSON)
    assert observation.quality == {"faces": 2.0}


@pytest.mark.needs_lfw
def test_a_much_smaller_face_behind_does_not_stop_the_capture():
    frame = frame_of(photo(FACE))
    frame[0:225, 415:640] = cv2.resize(photo(OTHER[0]), (225, 225), interpolation=cv2.INTER_AREA)
    observation = observe(frame)
    assert observation.quality["faces"] == 2 and observation.acquired


@pytest.mark.needs_lfw
def test_blurred_face_is_told_to_hold_still():
    blurred = cv2.GaussianBlur(frame_of(photo(FACE)), (0, 0), 4)
    analysis = assert_guided(blurred, Guidance.HOLD_STILL)
    assert analysis.quality["sharpness"] < QualityThresholds().min_sharpness


@pytest.mark.needs_lfw
def test_dark_face_asks_for_light_and_is_not_called_blurred():
    dark = (frame_of(photo(FACE)) * 0.3).astype(np.uint8)
    analysis = assert_guided(dark, Guidance.MORE_LIGHT)
    assert analysis.quality["sharpness"] < QualityThresholds().min_sharpness  # dim, not moving


@pytest.mark.needs_lfw
def test_overexposed_face_is_too_bright():
    bright = np.clip(frame_of(photo(FACE)).astype(np.float32) * 1.8, 0, 255).astype(np.uint8)
    assert_guided(bright, Guidance.TOO_BRIGHT)


@pytest.mark.needs_lfw
def test_tilted_head_is_asked_to_look_at_the_camera():
    rotation = cv2.getRotationMatrix2D((125, 125), 25, 1.0)
    tilted = cv2.warpAffine(photo(FACE), rotation, (250, 250), borderMode=cv2.BORDER_REPLICATE)
    analysis = assert_guided(frame_of(tilted), Guidance.LOOK_AT_CAMERA)
    assert analysis.quality["roll_deg"] == pytest.approx(-25, abs=3)


def test_no_face_is_no_face():
    assert_guided(np.full((480, 640, 3), 96, np.uint8), Guidance.NO_FACE)


@pytest.mark.needs_lfw
def test_several_problems_are_all_reported_most_useful_first():
    small_and_aside = frame_of(photo(FACE), scale=0.8, dx=-220)
    assert_guided(small_and_aside, Guidance.COME_CLOSER, Guidance.CENTRE_FACE)


@pytest.mark.needs_lfw
def test_the_gates_accept_nearly_every_lfw_face_framed_like_the_kiosk_camera():
    """The thresholds come from LFW: at kiosk framing they must not turn ordinary faces away."""
    files = sorted(lfw_dir().glob("*/*.jpg"))[::160][:50]
    results = [analyse(camera_view(read_rgb(path), settled=True)) for path in files]
    acquired = sum(r.acquired for r in results)
    refusals = [r.guidance for r in results if not r.acquired]
    # LFW's own refusals (a second person in the photo, a head turned away, a blurred press photo)
    # are a few percent; none may be about framing, which the camera view gets right for every photo.
    assert acquired >= 0.9 * len(files), refusals
    framing = {Guidance.COME_CLOSER, Guidance.STEP_BACK, Guidance.CENTRE_FACE}
    assert not any(framing & set(g) for g in refusals), refusals


# --------------------------------------------------------------------------------------------
# The measures themselves, on synthetic landmarks and metrics


def _template_landmarks(scale: float = 100.0, angle_deg: float = 0.0) -> np.ndarray:
    points = align.TEMPLATE_5 * scale
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    return points @ np.array([[c, s], [-s, c]]) + 200


def test_pose_of_the_chip_template_is_frontal_and_follows_rotation():
    roll, yaw = quality.pose(_template_landmarks())
    assert abs(roll) < 0.1 and abs(yaw) < 0.01
    roll, _ = quality.pose(_template_landmarks(angle_deg=20))
    assert roll == pytest.approx(20, abs=0.1)
    turned = _template_landmarks()
    turned[4, 0] += 0.2 * 100 * 0.53  # nose moved a fifth of the eye distance toward the image right
    assert quality.pose(turned)[1] == pytest.approx(0.2, abs=0.01)


def test_face_size_is_the_chip_face_square():
    assert quality.face_size_px(_template_landmarks(scale=120)) == pytest.approx(120, rel=0.02)


GOOD = {
    "face_px": 150.0,
    "centre_offset": 0.05,
    "in_frame": 1.0,
    "roll_deg": 2.0,
    "yaw": 0.05,
    "sharpness": 50.0,
    "highlight": 200.0,
    "shadow": 40.0,
    "clipped": 0.0,
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, ()),
        ({"face_px": 60.0}, (Guidance.COME_CLOSER,)),
        ({"face_px": 400.0}, (Guidance.STEP_BACK,)),
        ({"centre_offset": 0.3}, (Guidance.CENTRE_FACE,)),
        ({"in_frame": 0.9}, (Guidance.CENTRE_FACE,)),
        ({"roll_deg": -20.0}, (Guidance.LOOK_AT_CAMERA,)),
        ({"yaw": 0.35}, (Guidance.LOOK_AT_CAMERA,)),
        ({"sharpness": 5.0}, (Guidance.HOLD_STILL,)),
        ({"highlight": 80.0, "sharpness": 5.0}, (Guidance.MORE_LIGHT,)),
        ({"clipped": 0.2}, (Guidance.TOO_BRIGHT,)),
        ({"shadow": 160.0}, (Guidance.TOO_BRIGHT,)),
    ],
)
def test_each_threshold_gives_its_guidance(change, expected):
    assert quality.guidance(GOOD | change, QualityThresholds()) == expected


def test_quality_score_prefers_sharp_frontal_faces():
    limits = QualityThresholds()
    frontal = GOOD | {"roll_deg": 0.0, "yaw": 0.0}
    best = quality.score(frontal, limits)
    assert best == pytest.approx(1.0)
    assert quality.score(frontal | {"sharpness": 15.0}, limits) < best
    assert quality.score(frontal | {"yaw": 0.25}, limits) < best
    assert quality.score(frontal | {"face_px": 90.0}, limits) < best
