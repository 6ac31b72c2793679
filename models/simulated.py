"""A face matcher for simulations: scores follow who is really in front of the camera.

Genuine pairs score high and impostors low, deterministically per (live face, portrait), so a
seeded run always reaches the same decisions. It sits behind the same interface as the ONNX
pipeline and never looks at camera pixels.

Whose face a portrait shows is told by ``meta["face_id"]`` (the simulated enrolment), or, for a
portrait that arrives as pixels only (the DG2 image of a simulated passport chip), by the identity
mark :func:`stamp_face_mark` draws into it: a grid of black and white cells coding the face id, which
survives JPEG and JPEG 2000 coding. That mark is the simulated matcher's "face".
"""

from __future__ import annotations

import hashlib

import numpy as np

from drivers.interfaces import Frame
from models.matching import FaceObservation, Guidance, MatchResult, ReferencePortrait

MARK_ROWS, MARK_COLS, MARK_CELL = 4, 8, 8  # 32 bits: 24 of face-id digest, 8 of check
MARK_ORIGIN = (8, 8)  # top-left corner of the grid, (row, column) in pixels


def _unit(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _face_code(face_id: str) -> int:
    digest = hashlib.sha256(face_id.encode()).digest()
    value = int.from_bytes(digest[:3], "big")
    return value << 8 | _check(value)


def _check(value: int) -> int:
    return (sum(value.to_bytes(3, "big")) ^ 0xA5) & 0xFF


def stamp_face_mark(image: np.ndarray, face_id: str) -> np.ndarray:
    """A copy of the RGB ``image`` with the identity mark of ``face_id`` drawn in its top-left corner."""
    marked = image.copy()
    code = _face_code(face_id)
    top, left = MARK_ORIGIN
    for bit in range(MARK_ROWS * MARK_COLS):
        row, col = divmod(bit, MARK_COLS)
        on = code >> (MARK_ROWS * MARK_COLS - 1 - bit) & 1
        y, x = top + row * MARK_CELL, left + col * MARK_CELL
        marked[y : y + MARK_CELL, x : x + MARK_CELL] = 255 if on else 0
    return marked


def read_face_mark(image: np.ndarray | None) -> int | None:
    """The code of the identity mark in ``image``; ``None`` when it holds none (its check fails)."""
    top, left = MARK_ORIGIN
    if image is None or image.ndim != 3 or image.shape[0] < top + MARK_ROWS * MARK_CELL:
        return None
    if image.shape[1] < left + MARK_COLS * MARK_CELL:
        return None
    code = 0
    half = MARK_CELL // 2
    for bit in range(MARK_ROWS * MARK_COLS):
        row, col = divmod(bit, MARK_COLS)
        # The centre of each cell: coding noise gathers at the cell edges.
        y, x = top + row * MARK_CELL + half, left + col * MARK_CELL + half
        code = code << 1 | int(image[y - 2 : y + 2, x - 2 : x + 2].mean() >= 128)
    return code if code & 0xFF == _check(code >> 8) else None


class SimulatedFaceMatcher:
    model_version = "simulated-1"

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def observe(self, frame: Frame) -> FaceObservation:
        subject = frame.meta.get("subject")
        if subject is None:
            return FaceObservation(acquired=False, guidance=(Guidance.NO_FACE,))
        if not frame.meta.get("settled", True):
            return FaceObservation(acquired=False, guidance=(Guidance.COME_CLOSER,), face_present=True)
        return FaceObservation(
            acquired=True, face_present=True, quality={"sharpness": 0.9, "size": 0.5}, handle=subject
        )

    def compare(self, observation: FaceObservation, reference: ReferencePortrait) -> MatchResult:
        expected = reference.meta.get("face_id")
        if expected is not None:
            genuine = observation.handle == expected
        else:
            expected = read_face_mark(reference.image)
            genuine = expected is not None and _face_code(str(observation.handle)) == expected
        u = _unit(str(observation.handle), str(expected))
        score = 0.72 + 0.25 * u if genuine else 0.05 + 0.4 * u
        return MatchResult(score=round(score, 4), matched=score >= self.threshold, threshold=self.threshold)

    def check_reference(self, reference: ReferencePortrait) -> str | None:
        if reference.meta.get("face_id") or read_face_mark(reference.image) is not None:
            return None
        return "simulated portrait without a face"

    def forget(self) -> None:
        """Nothing to forget: the simulated matcher keeps no faces."""
