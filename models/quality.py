"""Capture quality of one face: measured from its 5 landmarks and its aligned chip, judged against thresholds.

The measures are cheap (well under a millisecond on a 150x150 chip) so every frame of the capture
loop gets them. They exist to tell the traveller what to change ("come closer", "look at the
camera"), and to keep a poor frame from becoming the one that is compared: a blurred or turned face
is the commonest cause of a false non-match at a gate.

Defaults were set on the LFW development images (press photos, 250x250) and on degraded copies of
them (Gaussian blur, scaled exposure); the figures quoted per threshold come from 500 of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from models import align
from models.matching import Guidance

# The part of the 150x150 chip that is face (eyes to mouth, cheek to cheek): with dlib's padding of
# 0.25 the face square spans 25..125, and its outer rows are hair and background.
_FACE_REGION = slice(30, 120)
# Eye-centre distance in the unpadded unit face square of dlib's chip template.
_TEMPLATE_EYE_DISTANCE = float(
    np.linalg.norm(align.TEMPLATE_5[0:2].mean(axis=0) - align.TEMPLATE_5[2:4].mean(axis=0))
)


@dataclass(frozen=True)
class QualityThresholds:
    """When a face is good enough to compare. Each bound names the guidance it triggers."""

    # Face size is the side of the face square the chip is cut from (eye corners and nose base span
    # about half of it; the detector's box is 1.0-1.9x, typically 1.3x, as large). COME_CLOSER below:
    # the chip's 100 px face would be upsampled more than 1.25x (LFW's faces are 57-104, median 77).
    min_face_px: float = 80.0
    # STEP_BACK above: on a 640x480 camera the padded chip (1.5x the face) no longer fits the frame.
    max_face_px: float = 300.0
    # CENTRE_FACE when the face centre is further than this from the frame centre (fraction of the
    # frame's width or height), or when less than ``min_in_frame`` of the face square is in the frame.
    max_centre_offset: float = 0.25
    min_in_frame: float = 0.97
    # LOOK_AT_CAMERA beyond these: roll is the eye line's angle; yaw is how far the nose base sits from
    # the eye midpoint along the eye line, in eye distances (0 when frontal, growing with the turn of
    # the head). LFW: 98% of faces within ±7.5° roll and ±0.27 yaw.
    max_roll_deg: float = 15.0
    max_yaw: float = 0.3
    # HOLD_STILL below: variance of the Laplacian of the chip's face region (grey levels²). LFW: 1st
    # percentile 15, median 52; a Gaussian blur of sigma 2 px brings a median face down to about 8.
    min_sharpness: float = 10.0
    # MORE_LIGHT when even the face's brightest 1% is darker than this. A percentile of the face, not
    # its mean, so that dark skin in good light is not taken for a dark picture (LFW minimum 116).
    min_highlight: float = 100.0
    # TOO_BRIGHT when more than this fraction of the face is clipped white (LFW maximum 0.03), or when
    # its darkest 1% is brighter than ``max_shadow`` (washed out; LFW maximum 121).
    max_clipped: float = 0.10
    max_shadow: float = 150.0


def face_size_px(landmarks: np.ndarray) -> float:
    """Side of the unpadded face square in image pixels: the scale the chip is cut at."""
    left, _, right, _ = align.chip_geometry(landmarks).box
    return (right - left + 1) / (1 + 2 * align.PADDING)


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(roll in degrees, yaw in eye distances) from dlib's 5 landmarks."""
    points = np.asarray(landmarks, dtype=np.float64)
    subject_left = points[0:2].mean(axis=0)  # image right
    subject_right = points[2:4].mean(axis=0)
    eye_line = subject_left - subject_right
    eye_distance = float(np.linalg.norm(eye_line))
    if eye_distance == 0:
        return 0.0, math.inf
    roll = math.degrees(math.atan2(eye_line[1], eye_line[0]))
    nose_offset = points[4] - (subject_left + subject_right) / 2
    yaw = float(nose_offset @ eye_line) / eye_distance**2
    return roll, yaw


def measure(
    frame_shape: tuple[int, ...], landmarks: np.ndarray, chip: np.ndarray, detector_score: float
) -> dict[str, float]:
    """Every quality measure of one face; the keys are what transaction records keep."""
    rows, cols = frame_shape[:2]
    geometry = align.chip_geometry(landmarks)
    cx, cy = geometry.centre
    half_face = (geometry.box[2] - geometry.box[0] + 1) / (1 + 2 * align.PADDING) / 2
    inside_w = max(0.0, min(cx + half_face, cols) - max(cx - half_face, 0))
    inside_h = max(0.0, min(cy + half_face, rows) - max(cy - half_face, 0))
    roll, yaw = pose(landmarks)
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)[_FACE_REGION, _FACE_REGION]
    shadow, highlight = np.percentile(grey, (1, 99))
    return {
        "face_px": float(2 * half_face),
        "centre_offset": float(max(abs(cx - cols / 2) / cols, abs(cy - rows / 2) / rows)),
        "in_frame": float(inside_w * inside_h / (2 * half_face) ** 2),
        "roll_deg": roll,
        "yaw": yaw,
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        "highlight": float(highlight),
        "shadow": float(shadow),
        "clipped": float((grey >= 250).mean()),
        "detector_score": float(detector_score),
    }


def guidance(metrics: Mapping[str, float], limits: QualityThresholds) -> tuple[Guidance, ...]:
    """What the traveller should change, most useful first; empty when the face is good enough."""
    codes: list[Guidance] = []
    if metrics["face_px"] < limits.min_face_px:
        codes.append(Guidance.COME_CLOSER)
    elif metrics["face_px"] > limits.max_face_px:
        codes.append(Guidance.STEP_BACK)
    if metrics["centre_offset"] > limits.max_centre_offset or metrics["in_frame"] < limits.min_in_frame:
        codes.append(Guidance.CENTRE_FACE)
    if abs(metrics["roll_deg"]) > limits.max_roll_deg or abs(metrics["yaw"]) > limits.max_yaw:
        codes.append(Guidance.LOOK_AT_CAMERA)
    exposure_ok = True
    if metrics["highlight"] < limits.min_highlight:
        codes.append(Guidance.MORE_LIGHT)
        exposure_ok = False
    elif metrics["clipped"] > limits.max_clipped or metrics["shadow"] > limits.max_shadow:
        codes.append(Guidance.TOO_BRIGHT)
        exposure_ok = False
    # A dim face has little Laplacian energy for want of light, not because it moved: sharpness is
    # only judged on a well-exposed face.
    if exposure_ok and metrics["sharpness"] < limits.min_sharpness:
        codes.append(Guidance.HOLD_STILL)
    return tuple(codes)


def score(metrics: Mapping[str, float], limits: QualityThresholds) -> float:
    """One number in [0, 1] to rank acceptable frames of a burst: sharp, frontal and large is best.

    Each factor saturates where more stops helping the descriptor (four times the minimum sharpness,
    1.5 times the minimum face size), so a frame is not preferred for being needlessly close.
    """
    sharp = min(1.0, metrics["sharpness"] / (4 * limits.min_sharpness))
    turned = max(abs(metrics["roll_deg"]) / limits.max_roll_deg, abs(metrics["yaw"]) / limits.max_yaw)
    frontal = max(0.0, 1.0 - 0.5 * turned)
    size = min(1.0, metrics["face_px"] / (1.5 * limits.min_face_px))
    return float(sharp * frontal * size)
