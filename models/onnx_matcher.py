"""The production face matcher: :class:`~models.matching.FaceMatcher` on the ONNX pipeline.

Contract with the engine (beyond the protocol):

- ``observe`` and ``compare`` run on the engine's worker thread; the matcher is thread-safe.
- An acquired observation's handle holds the live descriptor only, in memory; the chip is dropped
  in ``observe``. Nothing is ever written to disk.
- ``compare`` embeds the reference portrait once per transaction (cached in memory). Call
  :meth:`OnnxFaceMatcher.forget` when the transaction ends: it drops the cached portrait descriptors.
- A portrait without a usable face gives ``MatchResult(score=-1.0, matched=False)`` — no evidence,
  never a match — and a logged warning. :meth:`OnnxFaceMatcher.check_reference` says so before the
  capture starts, so the engine can refer with NO_REFERENCE_PORTRAIT instead of FACE_MISMATCH and
  spare the traveller the capture attempts.
- Scores are :func:`models.scoring.similarity` (higher = more similar), the one function the
  calibration used too. The decision threshold is the ResNet manifest's calibrated operating point
  for the configured key (e.g. ``fmr_1e-3``); until one is calibrated it is dlib's 0.6 Euclidean
  distance, with a warning at start-up.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from drivers.interfaces import Frame
from models.manifest import Manifest
from models.matching import FaceObservation, MatchResult, ModelUnavailable, ReferencePortrait
from models.pipeline import FacePipeline, LiveFace, PipelineSettings
from models.portraits import PortraitCache, PortraitDescriptor
from models.scoring import SCORE_DEFINITION, similarity

log = logging.getLogger(__name__)

SCORE_FUNCTION = SCORE_DEFINITION["function"]

# A comparison with a portrait that has no usable face: below any real score (distances stay
# well under 2), and finite so that the transaction record can keep it.
NO_EVIDENCE_SCORE = -1.0


def decision_threshold(descriptor: Manifest, operating_point: str, flip_augment: bool) -> tuple[float, str]:
    """The score threshold at ``operating_point`` and a note of where it came from.

    ``descriptor`` is the descriptor ResNet's manifest (fp32 or int8: each has its own thresholds);
    ``operating_points`` in it is what :func:`models.tools.thresholds.operating_points_for` put
    there: the score function, the flip setting and the model the thresholds were calibrated for,
    and one entry per target FMR. A threshold calibrated for another score, another flip setting or
    another model is refused rather than silently misapplied.
    """
    points = descriptor.operating_points
    entry = points.get(operating_point)
    if entry is None:
        distance = float(descriptor.output["upstream_threshold"])
        # The score of two descriptors that far apart, whatever the score's formula.
        threshold = float(similarity(np.zeros(1), np.array([distance])))
        log.warning(
            "no calibrated operating point %r in the %s manifest: using dlib's uncalibrated %.2f "
            "Euclidean distance (score %.2f) until one is calibrated",
            operating_point,
            descriptor.name,
            distance,
            threshold,
        )
        return threshold, f"dlib default (euclidean {distance})"

    def refused(problem: str) -> ModelUnavailable:
        return ModelUnavailable(
            f"operating point {operating_point!r} in the {descriptor.name} manifest: {problem}"
        )

    if points.get("score", SCORE_FUNCTION) != SCORE_FUNCTION:
        raise refused(f"it is for the score {points['score']!r}, this matcher scores with {SCORE_FUNCTION}")
    if points.get("flip", flip_augment) != flip_augment:
        raise refused(f"it was calibrated with flip={points['flip']}, the pipeline runs flip={flip_augment}")
    if points.get("calibrated_model_sha256", descriptor.sha256) != descriptor.sha256:
        raise refused("it was calibrated for another model file")
    threshold = entry.get("threshold") if isinstance(entry, Mapping) else entry
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise refused(f"its threshold {threshold!r} is not a number")
    return float(threshold), f"{operating_point} (calibrated)"


class OnnxFaceMatcher:
    def __init__(self, model_dir: Path, *, threads: int, settings: PipelineSettings) -> None:
        """Load and verify the models; raises ModelUnavailable with the reason when they cannot be used."""
        self.settings = settings
        self._stills = settings.for_stills()
        self.pipeline = FacePipeline(model_dir, threads, settings.precision)
        self.threshold, self.threshold_source = decision_threshold(
            self.pipeline.descriptor_manifest, settings.operating_point, settings.flip_augment
        )
        # Every model and the threshold decide; a transaction record names all of them.
        models = "+".join(f"{name}@{m.sha256[:12]}" for name, m in self.pipeline.manifests.items())
        self.model_version = f"{models};{settings.operating_point}={self.threshold:.4f}"
        self._portraits = PortraitCache()

    def observe(self, frame: Frame) -> FaceObservation:
        analysis = self.pipeline.analyse(frame.image, self.settings)
        handle = None
        if analysis.acquired and analysis.chip is not None:
            handle = LiveFace(self.pipeline.embed(analysis.chip, self.settings.flip_augment))
        return FaceObservation(
            acquired=handle is not None,
            guidance=analysis.guidance,
            quality=analysis.quality,
            face_present=analysis.faces > 0,
            handle=handle,
        )

    def compare(self, observation: FaceObservation, reference: ReferencePortrait) -> MatchResult:
        live = observation.handle
        if not observation.acquired or not isinstance(live, LiveFace):
            raise ValueError("compare() takes an acquired observation made by this matcher")
        portrait = self._portrait(reference)
        if portrait.embedding is None:
            log.warning(
                "reference portrait from %s is unusable (%s): no match", reference.source, portrait.reason
            )
            return MatchResult(score=NO_EVIDENCE_SCORE, matched=False, threshold=self.threshold)
        score = float(similarity(live.embedding, portrait.embedding))
        return MatchResult(score=score, matched=score >= self.threshold, threshold=self.threshold)

    def check_reference(self, reference: ReferencePortrait) -> str | None:
        """Why this portrait cannot be compared with (no image, no face), or ``None`` when it can.

        Embeds the portrait into the transaction's cache, so the first ``compare`` does not wait for it.
        """
        portrait = self._portrait(reference)
        return None if portrait.embedding is not None else portrait.reason

    def forget(self) -> None:
        """End of transaction: drop every cached portrait descriptor."""
        self._portraits.clear()

    def embed_image(self, rgb: np.ndarray) -> tuple[np.ndarray | None, str]:
        """A still's descriptor, or ``None`` and why. No capture gates: any found face will do."""
        analysis = self.pipeline.analyse(rgb, self._stills)
        if not analysis.acquired or analysis.chip is None:
            return None, "no face found"
        return self.pipeline.embed(analysis.chip, self.settings.flip_augment), "ok"

    def _portrait(self, reference: ReferencePortrait) -> PortraitDescriptor:
        if reference.image is None:
            return PortraitDescriptor(None, "the reference has no image")
        return self._portraits.get(
            reference.image, lambda image: PortraitDescriptor(*self.embed_image(image))
        )
