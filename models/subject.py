"""Which detected face is the traveller's, and whether someone else is standing with them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from models.pyramid import Rect


@dataclass(frozen=True)
class Subject:
    box: Rect
    detector_score: float
    rivals: int  # other faces about as large as the subject's: another person at the camera


def choose_subject(
    faces: Sequence[tuple[Rect, float]], frame_shape: tuple[int, ...], rival_area_ratio: float
) -> Subject | None:
    """The largest face, centrality breaking near ties; ``None`` when there is no face.

    The weight only halves at the frame corner, so a clearly larger face wins even off-centre, while
    between two similar faces (a press photo's bystander, a companion at the kiosk) the central one is
    taken. Faces of at least ``rival_area_ratio`` of the subject's area count as rivals; smaller ones
    are people further back, who do not stop a capture.
    """
    if not faces:
        return None
    rows, cols = frame_shape[:2]
    half_diagonal = math.hypot(cols, rows) / 2

    def weight(face: tuple[Rect, float]) -> float:
        box = face[0]
        off = math.hypot((box.left + box.right) / 2 - cols / 2, (box.top + box.bottom) / 2 - rows / 2)
        return box.area * (1 - 0.5 * min(1.0, off / half_diagonal))

    box, detector_score = max(faces, key=weight)
    rivals = sum(1 for other, _ in faces if other != box and other.area >= rival_area_ratio * box.area)
    return Subject(box, detector_score, rivals)
