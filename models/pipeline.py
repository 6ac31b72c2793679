"""The face pipeline: detect, choose the subject, 5 landmarks, aligned chip, quality, descriptor, score.

Stages and the models behind them:

1. detect — the mmod CNN over an image pyramid restricted to the face sizes the camera can show
   (``PipelineSettings.detect_min_face_px`` / ``detect_max_face_px``; ``None`` for the full pyramid,
   which stills of unknown framing need);
2. subject — the largest, most central face; a second face nearly as large means a second person
   (``Guidance.ONE_PERSON``);
3. landmarks — dlib's 5-point regression-tree cascade, rounded to pixels as dlib reports them (so
   the chips, and the descriptors, are dlib's own);
4. align — dlib's 150x150 chip with padding 0.25;
5. quality — :mod:`models.quality` (size, centring, pose, exposure, sharpness) when gates are on;
6. embed — the dlib ResNet (fp32, or its int8 quantization from :mod:`models.tools.quantize`); with
   ``flip_augment`` the chip and its mirror image go through in one batch and the two 128-D
   descriptors are averaged (test-time augmentation).

Scores come from :func:`models.scoring.similarity` (higher = more similar; ``1 - euclidean/2``,
so dlib's "same person below 0.6" is a score above 0.7 and the raw distance is ``2 * (1 - score)``
of any recorded score). The calibrated thresholds are on that scale, so it is the one function every
comparison goes through.

Nothing here touches the disk after loading the models: chips and descriptors live in memory only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models import align, model_files, quality, runtime
from models.manifest import Manifest, load_verified
from models.matching import FaceObservation, Guidance, ModelUnavailable
from models.quality import QualityThresholds
from models.shape_predictor import ShapePredictor
from models.subject import choose_subject

PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class PipelineSettings:
    """How faces are looked for, judged and described. Defaults suit a 640x480 kiosk camera."""

    # Sizes of the detector's box (px) its pyramid covers: from its 80 px window to the frame height.
    # Kept wider than the sizes quality accepts (measured differently, on the landmarks) so that a face
    # too small or too large is still found and the traveller told to move, rather than "no face".
    detect_min_face_px: float | None = 80.0
    detect_max_face_px: float | None = 480.0
    # Doublings of the image before detection, for faces under the detector's 80 px window (4x time).
    upsample: int = 0
    # A second face this large (by area) means ONE_PERSON. The detector's box sizes come in pyramid
    # steps of 1.2, so one step smaller is 0.69 of the area: 0.6 counts it, two steps (0.48) do not.
    rival_area_ratio: float = 0.6
    flip_augment: bool = True
    precision: str = "fp32"  # the descriptor ResNet: "fp32" or "int8" (its own calibrated thresholds)
    # Off for stills (reference portraits, benchmark pairs): a found face is enough.
    quality_gates: bool = True
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    operating_point: str = "fmr_1e-3"  # key into the ResNet manifest's operating_points

    def __post_init__(self) -> None:
        low, high = self.detect_min_face_px, self.detect_max_face_px
        if low is not None and high is not None and low >= high:
            raise ValueError(f"detect_min_face_px {low} must be below detect_max_face_px {high}")
        if not 0 < self.rival_area_ratio <= 1:
            raise ValueError(f"rival_area_ratio must be in (0, 1], got {self.rival_area_ratio}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def for_stills(self) -> PipelineSettings:
        """The same descriptor (flip included) for a photo of unknown framing, with no capture gates."""
        return replace(self, detect_min_face_px=None, detect_max_face_px=None, quality_gates=False)


@dataclass(frozen=True)
class FaceAnalysis:
    """One image through the pipeline up to the chip."""

    acquired: bool
    guidance: tuple[Guidance, ...]
    quality: dict[str, float]
    faces: int
    chip: np.ndarray | None = field(default=None, repr=False)
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class LiveFace:
    """An acquired observation's handle: its descriptor only; the chip is dropped once embedded."""

    embedding: np.ndarray = field(repr=False)
    frames: int = 1  # how many frames' descriptors were fused into it


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:  # document portraits may be greyscale
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected an HxW or HxWx3 image, got shape {image.shape}")


def _session(verified: tuple[bytes, Manifest], threads: int) -> tuple[ort.InferenceSession, Manifest]:
    data, manifest = verified
    try:
        return runtime.make_session(data, threads), manifest
    except Exception as exc:  # onnxruntime's errors derive from Exception only
        raise ModelUnavailable(f"face model {manifest.file} cannot be loaded: {exc}") from exc


class FacePipeline:
    """The three verified models and the stages between them.

    Safe to share between threads: the landmark predictor keeps no state, and one lock serialises
    the two ONNX sessions — on a 2-4 core board, parallel runs would only fight over the cores the
    sessions' own threads already use.
    """

    def __init__(self, model_dir: Path, threads: int, precision: str = "fp32") -> None:
        detector = load_verified(model_files.model_path(model_dir, model_files.DETECTOR_NAME))
        self.detector, detector_manifest = _session(detector, threads)
        descriptor = (
            model_files.load_verified_int8(model_files.int8_path(model_dir))
            if precision == "int8"
            else load_verified(model_files.fp32_path(model_dir))
        )
        self.embedder, self.descriptor_manifest = _session(descriptor, threads)
        data, landmarks_manifest = load_verified(
            model_files.model_path(model_dir, model_files.LANDMARKS_NAME)
        )
        try:
            self.predictor = ShapePredictor.load(data)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelUnavailable(f"face model {landmarks_manifest.file} cannot be loaded: {exc}") from exc
        loaded = (self.descriptor_manifest, detector_manifest, landmarks_manifest)
        self.manifests = {m.name: m for m in loaded}
        self._detector_mean = detector_manifest.input["mean_rgb"]
        self._embedder_mean = self.descriptor_manifest.input["mean_rgb"]
        self._lock = threading.Lock()

    def analyse(self, image: np.ndarray, settings: PipelineSettings) -> FaceAnalysis:
        """Find the subject's face and cut its chip; with quality gates, judge it too."""
        rgb = _as_rgb(image)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with self._lock:
            faces = runtime.detect(
                rgb,
                self.detector,
                min_face_px=settings.detect_min_face_px,
                max_face_px=settings.detect_max_face_px,
                upsample=settings.upsample,
                mean_rgb=self._detector_mean,
            )
        started = _lap(timings, "detect", started)
        subject = choose_subject(faces, rgb.shape, settings.rival_area_ratio)
        counted = {"faces": float(len(faces))}
        if subject is None:
            return FaceAnalysis(False, (Guidance.NO_FACE,), counted, 0, timings_ms=timings)
        if settings.quality_gates and subject.rivals:
            return FaceAnalysis(False, (Guidance.ONE_PERSON,), counted, len(faces), timings_ms=timings)
        landmarks = self.predictor.predict_rounded(rgb, subject.box.as_tuple())
        started = _lap(timings, "landmarks", started)
        chip = align.extract_chip(rgb, landmarks)
        started = _lap(timings, "align", started)
        metrics = quality.measure(rgb.shape, landmarks, chip, subject.detector_score) | counted
        metrics["quality"] = quality.score(metrics, settings.quality)
        codes = quality.guidance(metrics, settings.quality) if settings.quality_gates else ()
        _lap(timings, "quality", started)
        return FaceAnalysis(not codes, codes, metrics, len(faces), chip, timings)

    def embed(self, chip: np.ndarray, flip_augment: bool) -> np.ndarray:
        """The chip's 128-D descriptor; with ``flip_augment`` the mean of it and its mirror's."""
        batch = np.stack([chip, align.flip(chip)]) if flip_augment else chip[None]
        with self._lock:
            descriptors = runtime.embed(self.embedder, batch, self._embedder_mean)
        return descriptors.mean(axis=0)


def _lap(timings: dict[str, float], stage: str, started: float) -> float:
    now = time.perf_counter()
    timings[stage] = (now - started) * 1000
    return now


# --------------------------------------------------------------------------------------------
# Bursts: the best of a few frames, optionally their descriptors fused


def fuse_embeddings(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Mean descriptor: averages out what differs between frames (noise, expression) of one face."""
    return np.mean(np.stack(embeddings), axis=0)


def rank_acquired(observations: Iterable[FaceObservation]) -> list[FaceObservation]:
    """Acquired observations, best quality first (earliest first among equals)."""
    acquired = [o for o in observations if o.acquired]
    return sorted(acquired, key=lambda o: o.quality.get("quality", 0.0), reverse=True)


class BurstSelector:
    """The best acquired observation among the last ``frames``, for a capture loop that can afford a
    short burst instead of comparing the first acceptable frame.

    With ``fuse`` > 1 the best observation's handle carries the mean descriptor of the ``fuse`` best
    frames. Holds observations (descriptors) only until :meth:`clear`, which the capture loop calls when
    the transaction ends.
    """

    def __init__(self, frames: int = 5, fuse: int = 1) -> None:
        if frames < 1 or not 1 <= fuse <= frames:
            raise ValueError(f"need 1 <= fuse <= frames, got fuse={fuse}, frames={frames}")
        self.fuse = fuse
        self._recent: deque[FaceObservation] = deque(maxlen=frames)

    def add(self, observation: FaceObservation) -> None:
        self._recent.append(observation)

    def best(self) -> FaceObservation | None:
        ranked = rank_acquired(self._recent)
        if not ranked:
            return None
        top = ranked[: self.fuse]
        if len(top) == 1:
            return top[0]
        fused = fuse_embeddings([o.handle.embedding for o in top])
        return replace(top[0], handle=LiveFace(fused, frames=len(top)))

    def clear(self) -> None:
        self._recent.clear()
