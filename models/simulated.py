"""A face matcher for simulations: scores follow who is really in front of the camera.

Genuine pairs score high and impostors low, deterministically per (live face, portrait), so a
seeded run always reaches the same decisions. It sits behind the same interface as the ONNX
pipeline and never sees pixels.
"""

from __future__ import annotations

import hashlib

from drivers.interfaces import Frame
from models.matching import FaceObservation, Guidance, MatchResult, ReferencePortrait


def _unit(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


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
        u = _unit(str(observation.handle), str(expected))
        genuine = observation.handle == expected
        score = 0.72 + 0.25 * u if genuine else 0.05 + 0.4 * u
        return MatchResult(score=round(score, 4), matched=score >= self.threshold, threshold=self.threshold)

    def check_reference(self, reference: ReferencePortrait) -> str | None:
        return None if reference.meta.get("face_id") else "simulated portrait without a face"

    def forget(self) -> None:
        """Nothing to forget: the simulated matcher keeps no faces."""
