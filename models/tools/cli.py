"""``python -m models bench | calibrate``: the offline commands that need the LFW dev set."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from models import align, model_files
from models import manifest as mf
from models.tools import embeddings, lfw, quantize, report, thresholds
from models.tools.accuracy import cache_dir_for, calibration_document, int8_verdict, run_accuracy, write_det
from models.tools.chains import OnnxChain
from models.tools.latency import run_latency

MODEL_FAMILY = "dlib_resnet_v1"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parse_threads(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def cli_bench(args: Any) -> int:
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    if not args.no_accuracy:
        run = run_accuracy(args.data, limit=args.limit, model_dir=args.models, pipelines=pipelines)
        print(f"accuracy on {run.dataset.dataset_id} (all pairs; FTA counted as non-match for genuine pairs)")
        print(report.format_table(list(run.results.values())))
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


def calibrate_ranges(data: Path, model_dir: Path, *, images: int, seed: int, activations: str) -> Path:
    """Measure the int8 activation ranges on real chips and commit them (``quantize.RANGES_FILE``)."""
    full = lfw.load_lfw(data)
    chain = OnnxChain.load(model_dir, precision="fp32")
    candidates = quantize.pick_calibration_images(full.labels, full.usable, images, seed)
    chips: list[np.ndarray] = []
    names: list[str] = []
    for index in candidates.tolist():
        chip = chain.chip(embeddings.read_rgb(full.paths[index]))
        if chip is None:
            continue
        chips.extend([chip, align.flip(chip)])
        names.append(full.names[index])
        if len(names) == images:
            break
    description = {
        "dataset": full.dataset_id,
        "dataset_fingerprint_sha256": full.fingerprint,
        "selection": (
            f"numpy default_rng({seed}) permutation of the usable images, first image of each "
            f"new person, skipping images without a detected face, until {images} images"
        ),
        "images": len(names),
        "image_names_sha256": quantize.names_digest(names),
        "inputs": len(chips),
        "mirrored": "each chip followed by its mirror image (the flip-augmented pipeline feeds both)",
        "batch": quantize.CALIBRATION_BATCH,
        "chips": chain.chip_settings(),
        "note": "drawn from the same dev set the evaluation uses (there is no other labelled set here)",
    }
    _, fp32 = mf.load_verified(model_files.fp32_path(model_dir))
    ranges = quantize.measure_ranges(model_files.fp32_path(model_dir), np.stack(chips), activations)
    path = quantize.write_ranges(quantize.ranges_document(fp32, ranges, activations, description))
    _log(f"int8 ranges of {len(ranges)} tensors from {len(names)} images / {len(chips)} chips: {path}")
    return path


def calibrate_thresholds(data: Path, model_dir: Path, *, limit: int | None, out: Path | None) -> None:
    """Thresholds at FMR 1e-2/1e-3/1e-4 of every variant, on all different-person pairs."""
    run = run_accuracy(data, limit=limit, model_dir=model_dir, pipelines=("ours",), l2_candidate=False)
    doc = calibration_document(run)
    if out is None:
        out = (
            thresholds.thresholds_file(MODEL_FAMILY)
            if limit is None
            else cache_dir_for(run.dataset) / f"calibration_limit{limit}.json"
        )
    thresholds.write_calibration(doc, out)
    print(report.format_table(list(run.results.values())))
    print(f"thresholds written: {out} (default variant {doc['default_variant']})")


def cli_calibrate(args: Any) -> int:
    """Ranges first (they decide the int8 bytes), then the int8 model, then the thresholds on both."""
    models = args.models if args.models is not None else model_files.default_model_dir()
    if args.only in (None, "ranges"):
        calibrate_ranges(args.data, models, images=args.images, seed=args.seed, activations=args.activations)
        path, _ = quantize.build_int8(models, force=True)
        print(f"{model_files.INT8_NAME}: {path} sha256 {mf.sha256_file(path)}")
    if args.only in (None, "thresholds"):
        calibrate_thresholds(args.data, models, limit=args.limit, out=args.out)
        from models.tools.build import build_all

        build_all(models)  # the manifests take up the new operating points
    return 0
