"""Accuracy of the face verifier on the dev set: every pipeline variant embedded once (cached), all
pairs scored, the int8 verdict, the DET plot and the thresholds document.

Per-image results are cached under ``var/eval/<dataset>/`` (chips as a uint8 .npy, descriptors as
.npz) so the 9,525-image set is processed once per pipeline setting; ``--limit N`` fills the first N.
The production pipeline plugs in as any ``embed_fn(rgb) -> descriptor | None`` through
:func:`models.tools.embeddings.embed_images`.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import model_files
from models.tools import embeddings, lfw, metrics, report, thresholds
from models.tools.chains import DlibChain, OnnxChain, settings_key
from models.tools.embeddings import Embeddings
from models.tools.lfw import Dataset
from models.tools.metrics import Evaluation
from models.tools.pair_scores import Scores

MODEL_FAMILY = "dlib_resnet_v1"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_dir_for(dataset: Dataset, base: Path | None = None) -> Path:
    root = base if base is not None else embeddings.DEFAULT_CACHE_DIR
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
        embeddings.save_npz_atomic(meta_path, names=np.asarray(full.names), done=done, acquired=acquired)

    todo = [i for i in range(min(count, n)) if not done[i]]
    started = time.perf_counter()
    for k, i in enumerate(todo, start=1):
        chip = chain.chip(embeddings.read_rgb(full.paths[i]))
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
        embeddings.save_npz_atomic(path, vectors=vectors, done=done)
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
    models = model_dir if model_dir is not None else model_files.default_model_dir()
    started = time.perf_counter()
    full = lfw.load_lfw(data_dir)
    count = len(full) if limit is None else min(limit, len(full))
    dataset = full if count == len(full) else full.subset(count)
    cache = cache_dir_for(full, cache_base)
    pairs = lfw.official_pairs(full) if count == len(full) else None
    _log(f"data: {dataset.dataset_id}, {len(dataset)} images ({time.perf_counter() - started:.1f} s to hash)")
    results: dict[str, Evaluation] = {}
    scores: dict[str, Scores] = {}
    settings: dict[str, dict[str, Any]] = {}
    info: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}

    def score(name: str, emb: Embeddings, how: dict[str, Any]) -> None:
        t = time.perf_counter()
        result, sc = metrics.evaluate(name, dataset, emb, settings=how, pairs=pairs)
        results[name], scores[name], settings[name] = result, sc, how
        _log(f"  scored {name}: {time.perf_counter() - t:.1f} s")

    def embed_timed(label: str, embed_fn: embeddings.EmbedFn, cache_name: str) -> Embeddings:
        """Whole images through a pipeline, cached; its wall time goes to ``seconds``."""
        t = time.perf_counter()
        emb = embeddings.embed_images(
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
            if precision == "int8" and not model_files.int8_path(models).is_file():
                _log("  int8 model not built (python -m models build): skipped")
                continue
            loaded = base if precision == "fp32" else OnnxChain.load(models, precision="int8")
            for flip in flips:
                chain = base.with_resnet(loaded, flip)
                name = ours_name(precision, flip)
                t = time.perf_counter()
                emb = embed_chip_set(
                    chips,
                    acquired,
                    chain.embed_chips,
                    cache / f"emb_{chain.embed_key()}.npz",
                    len(full),
                )
                seconds[f"{name} embed"] = time.perf_counter() - t
                info[thresholds.variant_key(precision, flip)] = {
                    "precision": precision,
                    "flip": flip,
                    "model_file": chain.shas["resnet_file"],
                    "model_sha256": chain.shas["resnet"],
                    "_name": name,
                }
                score(name, emb, chain.settings())
                if l2_candidate and precision == "fp32" and flip:
                    # Not the calibrated score: measured so the lead can decide on a comparator
                    # change (it would go into similarity and need a recalibration).
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
            score(
                PRODUCTION_NAME, embed_timed("production", embed_fn, f"production_{settings_key(how)}"), how
            )
    if "dlib" in pipelines:
        chain_d = DlibChain()
        score(DLIB_NAME, embed_timed("dlib", chain_d, f"dlib_{chain_d.key()}"), chain_d.settings())
    return AccuracyRun(dataset, results, scores, settings, info, seconds)


def production_embed_fn(model_dir: Path) -> tuple[embeddings.EmbedFn, dict[str, Any]] | None:
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
        report.DetCurve(name, *metrics.det_points(sc), report.palette(i))
        for i, (name, sc) in enumerate(run.scores.items())
    ]
    title = (
        f"DET, {run.dataset.dataset_id}: all pairs ({next(iter(run.results.values())).n_impostor:,} impostor)"
        if run.results
        else "DET"
    )
    return report.draw_det(curves, path, title=title)


def calibration_document(run: AccuracyRun, date: dt.date | None = None) -> dict[str, Any]:
    variants = {
        key: (run.results[meta["_name"]], {k: v for k, v in meta.items() if not k.startswith("_")})
        for key, meta in run.variant_info.items()
    }
    if not variants:
        raise ValueError("no variant of our pipeline was evaluated")
    verdict = int8_verdict(run, flip=True)
    flip_default = thresholds.variant_key("fp32", True) in variants
    default = thresholds.variant_key("int8" if verdict and verdict["int8_default"] else "fp32", flip_default)
    if default not in variants:
        default = next(iter(variants))
    any_name = next(iter(run.variant_info.values()))["_name"]
    pipeline = {
        k: v for k, v in run.settings[any_name].items() if k not in ("flip", "descriptor", "precision")
    }
    pipeline["flip_variants"] = "*_flip: descriptor = mean of chip and mirrored-chip descriptors"
    return thresholds.build_calibration(
        MODEL_FAMILY,
        run.dataset,
        pipeline,
        variants,
        default_variant=default,
        int8_verdict=verdict,
        date=date,
    )
