"""The two reference pipelines the evaluation compares, both ending in a descriptor per image
(None = failure to acquire):

* :class:`OnnxChain`, ours, from the public API of ``models.runtime`` / ``shape_predictor`` /
  ``align``: the mmod detector on the whole image with dlib's full pyramid (once more with the image
  upsampled 2x if nothing is found), the subject chosen by :func:`select_subject`, 5 landmarks
  (rounded, as dlib reports them), dlib's 150 px chip, the ResNet (fp32 or int8), and optionally the
  mean of the chip's and its mirror image's descriptors.
* :class:`DlibChain`, dlib's own pipeline through dlib-bin (HOG frontal detector, the same 5-point
  model, ``get_face_chip``, ``compute_face_descriptor``) with the same subject rule. dlib is a
  benchmark oracle only: it is imported inside this class, never by run-time code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import align, model_files, runtime
from models import manifest as mf
from models.shape_predictor import ShapePredictor

Box = tuple[float, float, float, float]


def select_subject(boxes: Sequence[Box], image_shape: Sequence[int]) -> int | None:
    """Which detected face is the subject: the most central of those at least half the largest's area.

    At a kiosk the traveller is the big face in the middle; bystanders are smaller or off-centre. LFW
    is the same (the named person is centred by the deep-funneled alignment), and a background face
    that happens to be large must not win just by size, nor a tiny one by position.
    """
    if not boxes:
        return None
    arr = np.asarray(boxes, dtype=float)
    areas = (arr[:, 2] - arr[:, 0] + 1) * (arr[:, 3] - arr[:, 1] + 1)
    rows, cols = image_shape[0], image_shape[1]
    centres = np.stack([(arr[:, 0] + arr[:, 2]) / 2, (arr[:, 1] + arr[:, 3]) / 2], axis=1)
    dist = np.hypot(centres[:, 0] - (cols - 1) / 2, centres[:, 1] - (rows - 1) / 2)
    big = areas >= 0.5 * areas.max()
    dist[~big] = np.inf
    return int(np.argmin(dist))


# --------------------------------------------------------------------------------------------
# Our ONNX chain


@dataclass
class OnnxChain:
    detector: Any  # onnxruntime.InferenceSession
    predictor: ShapePredictor
    resnet: Any  # onnxruntime.InferenceSession
    flip: bool = True
    retry_upsample: bool = True
    precision: str = "fp32"
    shas: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls, model_dir: Path, *, threads: int = 1, precision: str = "fp32", flip: bool = True
    ) -> OnnxChain:
        det_bytes, det_manifest = mf.load_verified(model_dir / "dlib_mmod_detector.onnx")
        lm_bytes, lm_manifest = mf.load_verified(model_dir / "dlib_landmarks_5.npz")
        if precision == "fp32":
            res_bytes, res_manifest = mf.load_verified(model_files.fp32_path(model_dir))
        elif precision == "int8":
            res_bytes, res_manifest = model_files.load_verified_int8(model_files.int8_path(model_dir))
        else:
            raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
        return cls(
            detector=runtime.make_session(det_bytes, threads),
            predictor=ShapePredictor.load(lm_bytes),
            resnet=runtime.make_session(res_bytes, threads),
            flip=flip,
            precision=precision,
            shas={
                "detector": det_manifest.sha256,
                "landmarks": lm_manifest.sha256,
                "resnet": res_manifest.sha256,
                "resnet_file": res_manifest.file,
            },
        )

    def with_resnet(self, other: OnnxChain, flip: bool) -> OnnxChain:
        """This chain's detector and landmarks with ``other``'s ResNet (sessions are shared)."""
        return OnnxChain(
            self.detector,
            self.predictor,
            other.resnet,
            flip,
            self.retry_upsample,
            other.precision,
            self.shas | {"resnet": other.shas["resnet"], "resnet_file": other.shas["resnet_file"]},
        )

    # stages -----------------------------------------------------------------------------
    def find_face(self, rgb: np.ndarray, *, retry: bool | None = None, **limits: float | None) -> Box | None:
        sizes = {"min_face_px": limits.get("min_face_px"), "max_face_px": limits.get("max_face_px")}
        faces = runtime.detect(rgb, self.detector, **sizes)
        if not faces and (self.retry_upsample if retry is None else retry):
            # a face smaller than the 80 px window: dlib's remedy is one 2x upsampling
            faces = runtime.detect(rgb, self.detector, upsample=1, **sizes)
        pick = select_subject([r.as_tuple() for r, _ in faces], rgb.shape)
        return None if pick is None else faces[pick][0].as_tuple()

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        return self.predictor.predict_rounded(rgb, box)

    def align(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return align.extract_chip(rgb, landmarks)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """(N, 128) descriptors; with flip, the mean of each chip's and its mirror's (one batch)."""
        batch = np.asarray(chips)
        if batch.ndim == 3:
            batch = batch[None]
        if not self.flip:
            return runtime.embed(self.resnet, batch)
        both = runtime.embed(self.resnet, np.concatenate([batch, batch[:, :, ::-1]]))
        return (both[: len(batch)] + both[len(batch) :]) / np.float32(2)

    def chip(self, rgb: np.ndarray) -> np.ndarray | None:
        box = self.find_face(rgb)
        if box is None:
            return None
        return self.align(rgb, self.landmarks(rgb, box))

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        chip = self.chip(rgb)
        return None if chip is None else self.embed_chips(chip)[0]

    # description ------------------------------------------------------------------------
    def chip_settings(self) -> dict[str, Any]:
        return {
            "detector": "mmod CNN (ONNX), dlib's full image pyramid, threshold 0",
            "upsample_retry": "once at 2x when no face is found" if self.retry_upsample else "none",
            "subject": "most central face among those >= half the largest face's area",
            "landmarks": "dlib 5-point (numpy), rounded to integer pixels",
            "chip": "models.align.extract_chip: 150x150, padding 0.25 (dlib get_face_chip)",
            "detector_sha256": self.shas.get("detector"),
            "landmarks_sha256": self.shas.get("landmarks"),
        }

    def settings(self) -> dict[str, Any]:
        return self.chip_settings() | {
            "flip": self.flip,
            "descriptor": "mean of chip and mirrored-chip descriptors" if self.flip else "chip descriptor",
            "precision": self.precision,
            "resnet_file": self.shas.get("resnet_file"),
            "resnet_sha256": self.shas.get("resnet"),
        }

    def chip_key(self) -> str:
        return settings_key(self.chip_settings() | {"version": 1})

    def embed_key(self) -> str:
        return settings_key(self.settings() | {"version": 1})


def settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# dlib's own pipeline (oracle)


class DlibChain:
    """dlib's HOG + 5-point + ResNet pipeline via dlib-bin, with the model files from the wheel."""

    def __init__(self, *, retry_upsample: bool = True) -> None:
        import dlib  # benchmark/test oracle only

        from models.tools.build import find_source_package

        source = find_source_package()
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(source.path(mf.KNOWN_SOURCES["dlib_landmarks_5"]["file"])))
        self.recogniser = dlib.face_recognition_model_v1(
            str(source.path(mf.KNOWN_SOURCES["dlib_resnet_v1"]["file"]))
        )
        self.retry_upsample = retry_upsample

    def find_face(self, rgb: np.ndarray, *, retry: bool | None = None) -> Any:
        rects = self.detector(rgb, 0)
        if not len(rects) and (self.retry_upsample if retry is None else retry):
            rects = self.detector(rgb, 1)
        pick = select_subject([(r.left(), r.top(), r.right(), r.bottom()) for r in rects], rgb.shape)
        return None if pick is None else rects[pick]

    def landmarks(self, rgb: np.ndarray, rect: Any) -> Any:
        return self.predictor(rgb, rect)

    def align(self, rgb: np.ndarray, shape: Any) -> np.ndarray:
        return self.dlib.get_face_chip(rgb, shape, size=150, padding=0.25)

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        return np.asarray(self.recogniser.compute_face_descriptor(chip), np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        rect = self.find_face(rgb)
        if rect is None:
            return None
        return self.embed_chip(self.align(rgb, self.landmarks(rgb, rect)))

    def settings(self) -> dict[str, Any]:
        return {
            "detector": "dlib HOG frontal face detector, upsample 0",
            "upsample_retry": "once at upsample 1 when no face is found" if self.retry_upsample else "none",
            "subject": "most central face among those >= half the largest face's area",
            "landmarks": "dlib shape_predictor_5_face_landmarks.dat",
            "chip": "dlib.get_face_chip 150, padding 0.25",
            "descriptor": "dlib compute_face_descriptor (no jitter, no flip)",
            "dlib": getattr(self.dlib, "__version__", "?"),
        }

    def key(self) -> str:
        return settings_key(self.settings() | {"version": 1})
