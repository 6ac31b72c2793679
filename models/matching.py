"""What the transaction engine needs from face matching, independent of how it is done.

The ONNX pipeline and the simulated matcher both implement :class:`FaceMatcher`. Results carry
guidance codes the UI turns into words ("come closer", "only one person") and scores the policy
decides on; nothing here is kept after the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from drivers.interfaces import Frame


class Guidance(StrEnum):
    NO_FACE = "no_face"
    COME_CLOSER = "come_closer"
    STEP_BACK = "step_back"
    CENTRE_FACE = "centre_face"
    LOOK_AT_CAMERA = "look_at_camera"
    HOLD_STILL = "hold_still"
    MORE_LIGHT = "more_light"
    TOO_BRIGHT = "too_bright"
    REMOVE_SUNGLASSES = "remove_sunglasses"
    ONE_PERSON = "one_person"


@dataclass(frozen=True)
class ReferencePortrait:
    """The portrait the live face is compared with (document photo, chip DG2, enrolled record)."""

    image: np.ndarray | None
    source: str
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FaceObservation:
    """One frame's face as the capture stage sees it.

    ``acquired`` means a single face of sufficient quality was found; ``handle`` is the matcher's
    own in-memory representation (e.g. the aligned chip), dropped with the observation.
    """

    acquired: bool
    guidance: tuple[Guidance, ...] = ()
    quality: Mapping[str, float] = field(default_factory=dict)
    face_present: bool = False  # any face at all, even one not good enough
    handle: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class MatchResult:
    score: float  # higher means more similar
    matched: bool
    threshold: float


class FaceMatcher(Protocol):
    model_version: str

    def observe(self, frame: Frame) -> FaceObservation:
        """Detect and quality-check the face in ``frame`` (capture stage)."""
        ...

    def compare(self, observation: FaceObservation, reference: ReferencePortrait) -> MatchResult:
        """Compare an acquired face with the reference portrait (match stage)."""
        ...

    def check_reference(self, reference: ReferencePortrait) -> str | None:
        """Why ``reference`` cannot be matched against (no usable face), or ``None``."""
        ...

    def forget(self) -> None:
        """Drop everything kept about the transaction's faces (called when it ends)."""
        ...


class ModelUnavailable(RuntimeError):
    """The model cannot be used (missing, unverified, corrupt): the kiosk must not match."""
