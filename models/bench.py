"""Accuracy and speed of the face verifier: ``python -m models bench | calibrate | quantize``.

Two reference pipelines, both ending in a descriptor per image (None = failure to acquire):

* :class:`OnnxChain`, ours, from the public API of ``models.runtime`` / ``shape_predictor`` /
  ``align``: the mmod detector on the whole image with dlib's full pyramid (once more with the image
  upsampled 2x if nothing is found), the subject chosen by :func:`select_subject`, 5 landmarks
  (rounded, as dlib reports them), dlib's 150 px chip, the ResNet (fp32 or int8), and optionally the
  mean of the chip's and its mirror image's descriptors.
* :class:`DlibChain`, dlib's own pipeline through dlib-bin (HOG frontal detector, the same 5-point
  model, ``get_face_chip``, ``compute_face_descriptor``) with the same subject rule. dlib is a
  benchmark oracle only: it is imported inside this class, never by run-time code.

Per-image results are cached under ``var/eval/<dataset>/`` (chips as a uint8 .npy, descriptors as
.npz) so the 9,525-image set is processed once per pipeline setting; ``--limit N`` fills the first N.
The production pipeline plugs in as any ``embed_fn(rgb) -> descriptor | None`` through
:func:`models.evaluation.embed_images`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import align, evaluation, quantize, runtime
from models import manifest as mf
from models.evaluation import Dataset, Embeddings, Evaluation, Scores
from models.shape_predictor import ShapePredictor

MODEL_FAMILY = "dlib_resnet_v1"
Box = tuple[float, float, float, float]


def default_model_dir() -> Path:
    return evaluation.REPO_ROOT / "var" / "models"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Subject selection


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
            res_bytes, res_manifest = mf.load_verified(quantize.fp32_path(model_dir))
        elif precision == "int8":
            res_bytes, res_manifest = quantize.load_verified_int8(quantize.int8_path(model_dir))
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
        return _key(self.chip_settings() | {"version": 1})

    def embed_key(self) -> str:
        return _key(self.settings() | {"version": 1})


def _key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# dlib's own pipeline (oracle)


class DlibChain:
    """dlib's HOG + 5-point + ResNet pipeline via dlib-bin, with the model files from the wheel."""

    def __init__(self, *, retry_upsample: bool = True) -> None:
        import dlib  # benchmark/test oracle only

        from models.build import find_source_package

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
        return _key(self.settings() | {"version": 1})


# --------------------------------------------------------------------------------------------
# Caches


def cache_dir_for(dataset: Dataset, base: Path | None = None) -> Path:
    root = base if base is not None else evaluation.DEFAULT_CACHE_DIR
    return root / f"lfw-{dataset.fingerprint[:16]}"


def onnx_chips(
    full: Dataset, count: int, chain: OnnxChain, cache: Path
) -> tuple[np.ndarray, np.ndarray, float]:
    """Chips (uint8, (count,150,150,3), memory-mapped) and acquired flags for the first ``count`` images.

    Returns the wall time spent making new chips (0 when all came from the cache).
    """
    key = chain.chip_key()
    chips_path = cache / f"chips_{key}.npy"
    meta_path = cache / f"chips_{key}.meta.npz"
    n = len(full)
    cache.mkdir(parents=True, exist_ok=True)
    if chips_path.is_file() and meta_path.is_file():
        with np.load(meta_path, allow_pickle=False) as meta:
            same = tuple(meta["names"].tolist()) == full.names
            done, acquired = meta["done"].copy(), meta["acquired"].copy()
        chips = np.lib.format.open_memmap(chips_path, mode="r+") if same else None
    else:
        same, chips = False, None
    if not same or chips is None or chips.shape != (n, 150, 150, 3):
        chips = np.lib.format.open_memmap(chips_path, mode="w+", dtype=np.uint8, shape=(n, 150, 150, 3))
        done, acquired = np.zeros(n, bool), np.zeros(n, bool)

    def save() -> None:
        chips.flush()
        evaluation.save_npz_atomic(meta_path, names=np.asarray(full.names), done=done, acquired=acquired)

    todo = [i for i in range(min(count, n)) if not done[i]]
    started = time.perf_counter()
    for k, i in enumerate(todo, start=1):
        chip = chain.chip(evaluation.read_rgb(full.paths[i]))
        if chip is not None:
            chips[i] = chip
            acquired[i] = True
        done[i] = True
        if k % 250 == 0:
            save()
            _progress("chips (ours)", k, len(todo), time.perf_counter() - started)
    if todo:
        save()
        _progress("chips (ours)", len(todo), len(todo), time.perf_counter() - started)
    return chips[:count], acquired[:count].copy(), time.perf_counter() - started if todo else 0.0


def embed_chip_set(
    chips: np.ndarray,
    acquired: np.ndarray,
    embed: Callable[[np.ndarray], np.ndarray],
    path: Path,
    n_full: int,
) -> Embeddings:
    """Descriptors of cached chips, cached by (chip settings, ResNet, flip); batches of 32."""
    count = len(chips)
    vectors = np.zeros((n_full, 128), np.float32)
    done = np.zeros(n_full, bool)
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if data["vectors"].shape == vectors.shape:
                vectors, done = data["vectors"].copy(), data["done"].copy()
    todo = np.flatnonzero(~done[:count])
    for s in range(0, len(todo), 32):
        idx = todo[s : s + 32]
        ok = idx[acquired[idx]]
        if len(ok):
            vectors[ok] = embed(np.asarray(chips[ok]))
        done[idx] = True
    if len(todo):
        evaluation.save_npz_atomic(path, vectors=vectors, done=done)
    out = vectors[:count].copy()
    out[~acquired] = 0
    return Embeddings(out, acquired.copy())


def _progress(what: str, k: int, total: int, seconds: float) -> None:
    rate = seconds / max(k, 1)
    _log(f"  {what}: {k}/{total} images, {1000 * rate:.1f} ms/image, {rate * (total - k) / 60:.1f} min left")


# --------------------------------------------------------------------------------------------
# Accuracy


@dataclass
class AccuracyRun:
    dataset: Dataset
    results: dict[str, Evaluation]
    scores: dict[str, Scores]
    settings: dict[str, dict[str, Any]]
    variant_info: dict[str, dict[str, Any]]  # ours only: precision, flip, model file + sha
    seconds: dict[str, float]


def ours_name(precision: str, flip: bool) -> str:
    return f"ours {precision}{'+flip' if flip else ''}"


DLIB_NAME = "dlib (HOG)"
L2_CANDIDATE_NAME = "ours fp32+flip L2 (cand.)"
PRODUCTION_NAME = "production (models.pipeline)"


def run_accuracy(
    data_dir: Path,
    *,
    limit: int | None = None,
    model_dir: Path | None = None,
    pipelines: Sequence[str] = ("ours", "dlib"),
    precisions: Sequence[str] = ("fp32", "int8"),
    flips: Sequence[bool] = (True, False),
    cache_base: Path | None = None,
    l2_candidate: bool = True,
) -> AccuracyRun:
    models = model_dir if model_dir is not None else default_model_dir()
    started = time.perf_counter()
    full = evaluation.load_lfw(data_dir)
    count = len(full) if limit is None else min(limit, len(full))
    dataset = full if count == len(full) else full.subset(count)
    cache = cache_dir_for(full, cache_base)
    pairs = evaluation.official_pairs(full) if count == len(full) else None
    _log(f"data: {dataset.dataset_id}, {len(dataset)} images ({time.perf_counter() - started:.1f} s to hash)")
    results: dict[str, Evaluation] = {}
    scores: dict[str, Scores] = {}
    settings: dict[str, dict[str, Any]] = {}
    info: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}

    def score(name: str, emb: Embeddings, how: dict[str, Any]) -> None:
        t = time.perf_counter()
        result, sc = evaluation.evaluate(name, dataset, emb, settings=how, pairs=pairs)
        results[name], scores[name], settings[name] = result, sc, how
        _log(f"  scored {name}: {time.perf_counter() - t:.1f} s")

    def embed_timed(label: str, embed_fn: evaluation.EmbedFn, cache_name: str) -> Embeddings:
        """Whole images through a pipeline, cached; its wall time goes to ``seconds``."""
        t = time.perf_counter()
        emb = evaluation.embed_images(
            dataset,
            embed_fn,
            cache / f"{cache_name}.npz",
            progress=lambda k, total, s: _progress(label, k, total, s),
        )
        seconds[f"{label} embed"] = time.perf_counter() - t
        return emb

    if "ours" in pipelines:
        base = OnnxChain.load(models, precision="fp32")
        chips, acquired, seconds["ours chips"] = onnx_chips(full, count, base, cache)
        for precision in precisions:
            if precision == "int8" and not quantize.int8_path(models).is_file():
                _log("  int8 model not built (python -m models quantize): skipped")
                continue
            loaded = base if precision == "fp32" else OnnxChain.load(models, precision="int8")
            for flip in flips:
                chain = base.with_resnet(loaded, flip)
                name = ours_name(precision, flip)
                t = time.perf_counter()
                emb = embed_chip_set(
                    chips, acquired, chain.embed_chips, cache / f"emb_{chain.embed_key()}.npz", len(full)
                )
                seconds[f"{name} embed"] = time.perf_counter() - t
                info[evaluation.variant_key(precision, flip)] = {
                    "precision": precision,
                    "flip": flip,
                    "model_file": chain.shas["resnet_file"],
                    "model_sha256": chain.shas["resnet"],
                    "_name": name,
                }
                score(name, emb, chain.settings())
                if l2_candidate and precision == "fp32" and flip:
                    # Not the calibrated score: measured so the lead can decide on a comparator
                    # change (it would go into evaluation.similarity and need a recalibration).
                    norms = np.linalg.norm(emb.vectors, axis=1, keepdims=True)
                    unit = Embeddings(
                        (emb.vectors / np.maximum(norms, 1e-12)).astype(np.float32), emb.acquired
                    )
                    score(
                        L2_CANDIDATE_NAME,
                        unit,
                        chain.settings() | {"comparator": "L2-normalised descriptors"},
                    )
    if "production" in pipelines:
        production = production_embed_fn(models)
        if production is not None:
            embed_fn, how = production
            score(PRODUCTION_NAME, embed_timed("production", embed_fn, f"production_{_key(how)}"), how)
    if "dlib" in pipelines:
        chain_d = DlibChain()
        score(DLIB_NAME, embed_timed("dlib", chain_d, f"dlib_{chain_d.key()}"), chain_d.settings())
    return AccuracyRun(dataset, results, scores, settings, info, seconds)


def production_embed_fn(model_dir: Path) -> tuple[evaluation.EmbedFn, dict[str, Any]] | None:
    """The production matcher's still-image path (``models.onnx_matcher``) as an embed_fn, if present."""
    try:
        from models.onnx_matcher import OnnxFaceMatcher
        from models.pipeline import PipelineSettings

        settings = PipelineSettings()
        matcher = OnnxFaceMatcher(model_dir, threads=1, settings=settings)
    except Exception as exc:  # another helper's module, still being written: report, don't fail
        _log(f"  production pipeline unavailable: {type(exc).__name__}: {exc}")
        return None
    how = {
        "pipeline": "models.onnx_matcher.OnnxFaceMatcher.embed_image (stills path)",
        "settings": repr(settings.for_stills()),
        "models": str(getattr(matcher, "model_version", "?")).split(";")[0],
    }
    return (lambda rgb: matcher.embed_image(rgb)[0]), how


def int8_verdict(run: AccuracyRun, flip: bool = True, tolerance_pp: float = 0.2) -> dict[str, Any] | None:
    """The product rule: int8 becomes the default only within 0.2 points FNMR of fp32 at FMR 1e-3."""
    fp32 = run.results.get(ours_name("fp32", flip))
    int8 = run.results.get(ours_name("int8", flip))
    if fp32 is None or int8 is None:
        return None
    a, b = fp32.point(1e-3).fnmr, int8.point(1e-3).fnmr
    delta_pp = 100 * (b - a)
    return {
        "rule": (
            f"int8 is the default only if its FNMR at FMR 1e-3 is within {tolerance_pp} "
            "percentage points of fp32's"
        ),
        "flip": flip,
        "fnmr_fp32": round(a, 6),
        "fnmr_int8": round(b, 6),
        "delta_percentage_points": round(delta_pp, 4),
        "int8_default": bool(delta_pp <= tolerance_pp),
    }


def write_det(run: AccuracyRun, path: Path) -> Path:
    curves = [
        evaluation.DetCurve(name, *evaluation.det_points(sc), evaluation.palette(i))
        for i, (name, sc) in enumerate(run.scores.items())
    ]
    title = (
        f"DET, {run.dataset.dataset_id}: all pairs ({next(iter(run.results.values())).n_impostor:,} impostor)"
        if run.results
        else "DET"
    )
    return evaluation.draw_det(curves, path, title=title)


def calibration_document(run: AccuracyRun, date: dt.date | None = None) -> dict[str, Any]:
    variants = {
        key: (run.results[meta["_name"]], {k: v for k, v in meta.items() if not k.startswith("_")})
        for key, meta in run.variant_info.items()
    }
    if not variants:
        raise ValueError("no variant of our pipeline was evaluated")
    verdict = int8_verdict(run, flip=True)
    flip_default = evaluation.variant_key("fp32", True) in variants
    default = evaluation.variant_key("int8" if verdict and verdict["int8_default"] else "fp32", flip_default)
    if default not in variants:
        default = next(iter(variants))
    any_name = next(iter(run.variant_info.values()))["_name"]
    pipeline = {
        k: v for k, v in run.settings[any_name].items() if k not in ("flip", "descriptor", "precision")
    }
    pipeline["flip_variants"] = "*_flip: descriptor = mean of chip and mirrored-chip descriptors"
    return evaluation.build_calibration(
        MODEL_FAMILY,
        run.dataset,
        pipeline,
        variants,
        default_variant=default,
        int8_verdict=verdict,
        date=date,
    )


# --------------------------------------------------------------------------------------------
# Latency


@dataclass
class StageTimes:
    label: str
    ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.ms.setdefault(stage, []).append(1000 * seconds)

    def median(self, stage: str) -> float:
        values = self.ms.get(stage)
        return statistics.median(values) if values else math.nan

    def mean(self, stage: str) -> float:
        values = self.ms.get(stage)
        return statistics.fmean(values) if values else math.nan


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def pad_into_frame(rgb: np.ndarray, size: tuple[int, int] = (640, 480), at: tuple[int, int] | None = None):
    """A grey size[0] x size[1] frame with ``rgb`` pasted in (centred unless ``at`` = (x, y))."""
    width, height = size
    frame = np.full((height, width, 3), 114, np.uint8)
    h, w = rgb.shape[:2]
    x, y = at if at is not None else ((width - w) // 2, (height - h) // 2)
    frame[y : y + h, x : x + w] = rgb
    return frame


FRAME_LIMITS = {"min_face_px": 120.0, "max_face_px": 400.0}


def time_ours(
    chain32: OnnxChain, chain8: OnnxChain | None, images: Sequence[np.ndarray], label: str
) -> StageTimes:
    """Per-stage times of our chain; the detect stage includes subject selection, no upsample retry."""
    times = StageTimes(label)
    frames = [pad_into_frame(img) for img in images]
    # warm-up: first runs allocate arenas
    chain32.find_face(images[0], retry=False)
    for img, frame in zip(images, frames, strict=True):
        box, s = _timed(lambda img=img: chain32.find_face(img, retry=False))
        times.add("detect", s)
        if box is None:
            continue
        pts, s = _timed(lambda img=img, box=box: chain32.landmarks(img, box))
        times.add("landmarks", s)
        chip, s = _timed(lambda img=img, pts=pts: chain32.align(img, pts))
        times.add("align", s)
        for tag, ch in (("fp32", chain32), ("int8", chain8)):
            if ch is None:
                continue
            _, s = _timed(lambda ch=ch, chip=chip: runtime.embed(ch.resnet, chip))
            times.add(f"embed {tag} (1 chip)", s)
            _, s = _timed(
                lambda ch=ch, chip=chip: runtime.embed(ch.resnet, np.stack([chip, align.flip(chip)]))
            )
            times.add(f"embed {tag} (chip+mirror)", s)
        _, s = _timed(lambda frame=frame: chain32.find_face(frame, retry=False))
        times.add("detect 640x480 full pyramid", s)
        fbox, s = _timed(lambda frame=frame: chain32.find_face(frame, retry=False, **FRAME_LIMITS))
        times.add("detect 640x480 faces>=120px", s)
        if fbox is not None:
            fpts, s = _timed(lambda frame=frame, fbox=fbox: chain32.landmarks(frame, fbox))
            times.add("landmarks 640x480", s)
            _, s = _timed(lambda frame=frame, fpts=fpts: chain32.align(frame, fpts))
            times.add("align 640x480", s)
    return times


def time_dlib(chain: DlibChain, images: Sequence[np.ndarray]) -> StageTimes:
    times = StageTimes("dlib")
    chain(images[0])
    for img in images:
        rect, s = _timed(lambda img=img: chain.find_face(img, retry=False))
        times.add("detect", s)
        if rect is None:
            continue
        shape, s = _timed(lambda img=img, rect=rect: chain.landmarks(img, rect))
        times.add("landmarks", s)
        chip, s = _timed(lambda img=img, shape=shape: chain.align(img, shape))
        times.add("align", s)
        _, s = _timed(lambda chip=chip: chain.embed_chip(chip))
        times.add("embed", s)
        frame = pad_into_frame(img)
        _, s = _timed(lambda frame=frame: chain.find_face(frame, retry=False))
        times.add("detect 640x480", s)
    return times


def run_latency(
    data_dir: Path, *, count: int, threads: Sequence[int], model_dir: Path | None = None, dlib: bool = True
) -> str:
    models = model_dir if model_dir is not None else default_model_dir()
    full = evaluation.load_lfw(data_dir)
    step = max(1, len(full) // count)
    images = [evaluation.read_rgb(p) for p in full.paths[::step][:count]]
    have_int8 = quantize.int8_path(models).is_file()
    ours: dict[int, StageTimes] = {}
    for t in threads:
        c32 = OnnxChain.load(models, threads=t, precision="fp32")
        c8 = OnnxChain.load(models, threads=t, precision="int8") if have_int8 else None
        ours[t] = time_ours(c32, c8, images, f"ours {t} thread{'s' if t > 1 else ''}")
    theirs = time_dlib(DlibChain(), images) if dlib else None
    return format_latency(ours, theirs, len(images), have_int8)


def format_latency(ours: dict[int, StageTimes], theirs: StageTimes | None, n: int, have_int8: bool) -> str:
    lines = [f"latency, median ms over {n} LFW images (250x250) and the same faces padded into 640x480:"]
    stages = [
        "detect",
        "landmarks",
        "align",
        "embed fp32 (1 chip)",
        "embed fp32 (chip+mirror)",
        "embed int8 (1 chip)",
        "embed int8 (chip+mirror)",
        "detect 640x480 full pyramid",
        "detect 640x480 faces>=120px",
        "landmarks 640x480",
        "align 640x480",
    ]
    cols = [ours[t] for t in sorted(ours)]
    head = max(len(s) for s in stages) + 2
    lines.append(" " * head + "".join(f"{c.label:>18}" for c in cols) + (f"{'dlib':>12}" if theirs else ""))
    dlib_map = {
        "detect": "detect",
        "landmarks": "landmarks",
        "align": "align",
        "embed fp32 (1 chip)": "embed",
        "detect 640x480 full pyramid": "detect 640x480",
    }
    for stage in stages:
        if not have_int8 and "int8" in stage:
            continue
        row = stage.ljust(head) + "".join(f"{c.median(stage):>18.2f}" for c in cols)
        if theirs is not None:
            other = dlib_map.get(stage)
            row += f"{theirs.median(other):>12.2f}" if other else f"{'':>12}"
        lines.append(row)

    def total(c: StageTimes, embed: str, detect: str = "detect", frame: bool = False) -> float:
        lm, al = ("landmarks 640x480", "align 640x480") if frame else ("landmarks", "align")
        return c.median(detect) + c.median(lm) + c.median(al) + c.median(embed)

    dlib_total = (
        theirs.median("detect") + theirs.median("landmarks") + theirs.median("align") + theirs.median("embed")
        if theirs is not None
        else math.nan
    )
    dlib_frame = (
        theirs.median("detect 640x480")
        + theirs.median("landmarks")
        + theirs.median("align")
        + theirs.median("embed")
        if theirs is not None
        else math.nan
    )
    lines.append("")
    lines.append(
        "totals = detect + landmarks + align + embed (median ms). Targets: 250x250 <= 16 ms and >= 6x "
        "faster than dlib; 640x480 <= 40 ms; int8 embed <= 2.5 ms per chip"
    )
    header = f"  {'':<34}{'250x250':>9}{'x dlib':>8}{'640 full':>10}{'640 >=120':>11}"
    lines.append(header)
    precisions = ["fp32", "int8"] if have_int8 else ["fp32"]
    for c in cols:
        for p in precisions:
            for what in ("1 chip", "chip+mirror"):
                embed = f"embed {p} ({what})"
                t250 = total(c, embed)
                t640 = total(c, embed, "detect 640x480 full pyramid", frame=True)
                t640l = total(c, embed, "detect 640x480 faces>=120px", frame=True)
                ratio = dlib_total / t250
                lines.append(
                    f"  {f'{c.label}, {p}, {what}':<34}{t250:>6.1f}{_mark(t250 <= 16)}"
                    f"{ratio:>6.1f}{_mark(ratio >= 6)}{t640:>8.1f}{_mark(t640 <= 40)}"
                    f"{t640l:>8.1f}{_mark(t640l <= 40)}"
                )
        if have_int8:
            e8 = c.median("embed int8 (1 chip)")
            lines.append(f"  {c.label}: int8 embed {e8:.2f} ms per chip{_mark(e8 <= 2.5)}")
    if theirs is not None:
        lines.append(f"  {'dlib':<34}{dlib_total:>6.1f}{'':>3}{'':>8}{dlib_frame:>8.1f}")
    lines.append("  (* = target missed)")
    lines.append(
        "  (dlib's threads are its own; onnxruntime spinning is off; numbers from this x86 machine, not a Pi)"
    )
    return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "   " if ok else "  *"


# --------------------------------------------------------------------------------------------
# CLI entry points (wired in models/__main__.py)


def _parse_threads(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def cli_bench(args: Any) -> int:
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    if not args.no_accuracy:
        run = run_accuracy(args.data, limit=args.limit, model_dir=args.models, pipelines=pipelines)
        print(f"accuracy on {run.dataset.dataset_id} (all pairs; FTA counted as non-match for genuine pairs)")
        print(evaluation.format_table(list(run.results.values())))
        verdict = int8_verdict(run)
        if verdict:
            print(
                f"int8 verdict (flip): FNMR@1e-3 fp32 {100 * verdict['fnmr_fp32']:.3f}% vs int8 "
                f"{100 * verdict['fnmr_int8']:.3f}% (delta {verdict['delta_percentage_points']:+.3f} pp): "
                f"{'int8 may be the default' if verdict['int8_default'] else 'keep fp32 as the default'}"
            )
        print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items()))
        det = args.det if args.det is not None else cache_dir_for(run.dataset) / f"det_{len(run.dataset)}.png"
        print(f"DET curve: {write_det(run, det)}")
        out = args.json if args.json is not None else det.with_suffix(".json")
        out.write_text(
            json.dumps(
                {
                    "dataset": run.dataset.describe(),
                    "results": [r.to_dict() for r in run.results.values()],
                    "int8_verdict": verdict,
                    "seconds": run.seconds,
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
        print(f"results JSON: {out}")
    if not args.no_latency:
        count = args.latency_images if args.limit is None else min(args.latency_images, args.limit)
        print(
            run_latency(
                args.data,
                count=count,
                threads=_parse_threads(args.threads),
                model_dir=args.models,
                dlib="dlib" in pipelines,
            )
        )
    return 0


def cli_calibrate(args: Any) -> int:
    run = run_accuracy(
        args.data, limit=args.limit, model_dir=args.models, pipelines=("ours",), l2_candidate=False
    )
    doc = calibration_document(run)
    out = args.out
    if out is None:
        out = (
            evaluation.CALIBRATION_DIR / f"{MODEL_FAMILY}.json"
            if args.limit is None
            else cache_dir_for(run.dataset) / f"calibration_limit{args.limit}.json"
        )
    evaluation.write_calibration(doc, out)
    print(evaluation.format_table(list(run.results.values())))
    print(f"calibration written: {out} (default variant {doc['default_variant']})")
    return 0


def cli_quantize(args: Any) -> int:
    models = args.models if args.models is not None else default_model_dir()
    full = evaluation.load_lfw(args.data)
    chain = OnnxChain.load(models, precision="fp32")
    candidates = quantize.pick_calibration_images(full.labels, full.usable, args.images, args.seed)
    chips: list[np.ndarray] = []
    names: list[str] = []
    for index in candidates.tolist():
        chip = chain.chip(evaluation.read_rgb(full.paths[index]))
        if chip is None:
            continue
        chips.extend([chip, align.flip(chip)])
        names.append(full.names[index])
        if len(names) == args.images:
            break
    calibration = quantize.CalibrationSet(
        np.stack(chips),
        {
            "dataset": full.dataset_id,
            "dataset_fingerprint_sha256": full.fingerprint,
            "selection": (
                f"numpy default_rng({args.seed}) permutation of the usable images, first image of each "
                f"new person, skipping images without a detected face, until {args.images} images"
            ),
            "images": len(names),
            "image_names_sha256": quantize.names_digest(names),
            "inputs": len(chips),
            "mirrored": "each chip followed by its mirror image (the flip-augmented pipeline feeds both)",
            "batch": quantize.CALIBRATION_BATCH,
            "chips": chain.chip_settings(),
            "note": "drawn from the same dev set the evaluation uses (there is no other labelled set here)",
        },
    )
    target, manifest = quantize.quantize(models, calibration, activations=args.activations)
    quantize.load_verified_int8(target)
    print(f"{quantize.INT8_NAME}: {target} ({manifest.size_bytes} bytes, sha256 {manifest.sha256})")
    print(f"  source {manifest.source.file} sha256 {manifest.source.sha256}")
    print(
        f"  calibrated on {len(names)} images / {len(chips)} chips; "
        f"operating points recorded: {bool(manifest.operating_points)}"
    )
    return 0
