"""Running the converted models: onnxruntime sessions tuned for a Raspberry Pi, detection and embedding.

Run-time code: onnxruntime and numpy only (no dlib, no onnx package).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models import pyramid
from models.pyramid import Rect

DETECTOR_WINDOW = 80  # px: the mmod model's single 80x80 detection window
MIN_DETECTOR_INPUT = 29  # px: what its three unpadded 5x5 stride-2 convolutions need to give one cell


def make_session(path: str | os.PathLike[str] | bytes, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session for a small ARM board.

    ``threads`` sets intra-op parallelism; spinning is off because on 2-4 cores busy-waiting worker
    threads steal the time the work needs (two spinning threads ran slower than one).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    model = path if isinstance(path, bytes) else str(Path(path))
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def detect(
    image_rgb: np.ndarray,
    session: ort.InferenceSession,
    *,
    min_face_px: float | None,
    max_face_px: float | None,
    upsample: int = 0,
    threshold: float = 0.0,
    mean_rgb: Sequence[float] = pyramid.DEFAULT_MEAN_RGB,
) -> list[tuple[Rect, float]]:
    """Faces in an HxWx3 uint8 RGB image as (box, score), best first.

    With both size limits None the pyramid is dlib's full one and the boxes are dlib's. Limits
    restrict the pyramid to the levels that can hold faces of that size, which is where the time
    goes on a 640x480 frame. ``upsample`` doubles the image that many times first (dlib's
    ``upsample_num_times``) for faces smaller than the 80 px window.
    """
    image = np.ascontiguousarray(image_rgb)
    if image.dtype != np.uint8:
        raise ValueError("detect() takes a uint8 RGB image")
    for _ in range(upsample):
        image = _pyramid_up(image)
    scale = 2**upsample
    levels: list[int] | None = None
    if min_face_px is not None or max_face_px is not None:
        n_levels = len(pyramid.tile_layout(*image.shape[:2])[0])
        levels = pyramid.select_levels(
            n_levels,
            DETECTOR_WINDOW,
            None if min_face_px is None else min_face_px * scale,
            None if max_face_px is None else max_face_px * scale,
        )
    tiled = pyramid.build(image, mean_rgb, levels)
    if min(tiled.tensor.shape[2:]) < MIN_DETECTOR_INPUT:
        return []
    scores = session.run(None, {session.get_inputs()[0].name: tiled.tensor})[0][0, 0]
    found = pyramid.detections(scores, tiled, threshold=threshold)
    for _ in range(upsample):
        found = [(_rect_down(rect), score) for rect, score in found]
    return found


def chips_to_tensor(chips: np.ndarray, mean_rgb: Sequence[float] = pyramid.DEFAULT_MEAN_RGB) -> np.ndarray:
    """The ResNet's input for N aligned 150x150x3 uint8 RGB chips (the int8 calibration feeds it too)."""
    batch = np.asarray(chips)
    if batch.ndim == 3:
        batch = batch[None]
    return np.ascontiguousarray(
        (batch.astype(np.float32) - np.asarray(mean_rgb, np.float32)).transpose(0, 3, 1, 2) / np.float32(256)
    )


def embed(
    session: ort.InferenceSession, chips: np.ndarray, mean_rgb: Sequence[float] = pyramid.DEFAULT_MEAN_RGB
) -> np.ndarray:
    """128-D descriptors (not normalised) for N aligned 150x150x3 uint8 RGB chips, one call."""
    tensor = chips_to_tensor(chips, mean_rgb)
    return session.run(None, {session.get_inputs()[0].name: tensor})[0]


def _pyramid_up(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_up with pyramid_down<2>: about twice the size, align-corners bilinear."""
    nr, nc = image.shape[:2]
    # rect_up of the image rectangle, (p + (1.25, 0.75)) * 2, rounded as dlib converts it
    out_nc = pyramid.round_half_up((nc - 1 + 1.25) * 2) + 1
    out_nr = pyramid.round_half_up((nr - 1 + 0.75) * 2) + 1
    planes = image.transpose(2, 0, 1).astype(np.float32)
    up = pyramid.resize_align_corners(planes, out_nr, out_nc)
    return np.clip(up, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def _rect_down(rect: Rect) -> Rect:
    # pyramid_down<2>::point_down: p / 2 - (1.25, 0.75)
    return Rect(
        pyramid.round_half_up(rect.left / 2 - 1.25),
        pyramid.round_half_up(rect.top / 2 - 0.75),
        pyramid.round_half_up(rect.right / 2 - 1.25),
        pyramid.round_half_up(rect.bottom / 2 - 0.75),
    )
