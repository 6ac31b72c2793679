"""``python -m models``: face-model tooling.

list                       the face matchers this build provides
build [--out DIR] [--force]   convert the dlib models into DIR (default <repo>/var/models)
verify-models [--dir DIR]  check every model against its manifest; exit 1 if any is unusable
verify --pairs FILE --root DIR [--model-dir DIR] [--threads N]
                           score image pairs with the face pipeline (see models/verify_cli.py)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models import verify_cli
from models.matching import ModelUnavailable
from models.simulated import SimulatedFaceMatcher


def _list() -> int:
    print(f"simulated: {SimulatedFaceMatcher.model_version}")
    return 0


def _build(out: Path | None, force: bool) -> int:
    # Imported here: building needs the onnx package and the model wheel, the rest of the CLI does not.
    from models.build import build_all, default_out_dir

    target = out if out is not None else default_out_dir()
    try:
        results = build_all(target, force=force)
    except ModelUnavailable as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    for result in results:
        size = f"{result.size_bytes} bytes, {result.seconds:.1f} s"
        print(f"{result.name}: {result.status} {result.path} ({size})")
    return 0


def _verify(directory: Path | None) -> int:
    from models.build import default_out_dir, verify_all

    target = directory if directory is not None else default_out_dir()
    failures = 0
    for name, problem in verify_all(target):
        if problem is None:
            print(f"{name}: ok")
        else:
            failures += 1
            print(f"{name}: UNUSABLE: {problem}")
    return 1 if failures else 0


def _add_evaluation_commands(sub: argparse._SubParsersAction) -> None:
    models_help = "model directory (default: <repo>/var/models)"
    data_help = "LFW-style set: images/<Person>/<Person>_NNNN.jpg (+ pairsDevTrain.txt)"
    bench = sub.add_parser("bench", help="accuracy and per-stage latency, ours (fp32/int8) vs dlib")
    bench.add_argument("--data", type=Path, required=True, help=data_help)
    bench.add_argument("--threads", default="1,2", help="onnxruntime thread counts to time (default 1,2)")
    bench.add_argument("--limit", type=int, default=None, help="use only the first N images (quick run)")
    bench.add_argument("--models", type=Path, default=None, help=models_help)
    bench.add_argument("--pipelines", default="ours,dlib", help="comma list of ours, dlib, production")
    bench.add_argument("--latency-images", type=int, default=60, help="images to time (default 60)")
    bench.add_argument("--no-accuracy", action="store_true", help="latency only")
    bench.add_argument("--no-latency", action="store_true", help="accuracy only")
    bench.add_argument("--det", type=Path, default=None, help="DET curve PNG (default under var/eval/)")
    bench.add_argument("--json", type=Path, default=None, help="results JSON (default beside the PNG)")
    calibrate = sub.add_parser(
        "calibrate", help="thresholds at FMR 1e-2/1e-3/1e-4 on all different-person pairs"
    )
    calibrate.add_argument("--data", type=Path, required=True, help=data_help)
    calibrate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="calibration JSON (default models/calibration/dlib_resnet_v1.json)",
    )
    calibrate.add_argument("--limit", type=int, default=None, help="first N images only (writes under var/)")
    calibrate.add_argument("--models", type=Path, default=None, help=models_help)
    quant = sub.add_parser("quantize", help="static int8 QDQ per-channel copy of the face-descriptor ResNet")
    quant.add_argument(
        "--data", type=Path, required=True, help=data_help + "; calibration chips come from it"
    )
    quant.add_argument("--models", type=Path, default=None, help=models_help)
    quant.add_argument(
        "--images", type=int, default=256, help="calibration images, each + mirror (default 256)"
    )
    quant.add_argument("--seed", type=int, default=20261127, help="calibration sample seed")
    quant.add_argument(
        "--activations", choices=("u8", "s8"), default="u8", help="activation type (default u8)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description="Gerbang face models")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the face matchers this build provides")
    build = sub.add_parser("build", help="convert the dlib face models to ONNX / npz with manifests")
    build.add_argument("--out", type=Path, default=None, help="output directory (default: <repo>/var/models)")
    build.add_argument(
        "--force", action="store_true", help="rebuild even when the cached outputs are current"
    )
    verify = sub.add_parser("verify-models", help="check the built models against their manifests")
    verify.add_argument("--dir", type=Path, default=None, help="model directory (default: <repo>/var/models)")
    pairs = sub.add_parser(
        "verify", help="score image pairs (higher = more similar)", description=verify_cli.SUMMARY
    )
    verify_cli.add_arguments(pairs)
    _add_evaluation_commands(sub)
    args = parser.parse_args(argv)
    if args.command in ("bench", "calibrate", "quantize"):
        # Imported here: these need the LFW data, dlib-bin (bench) and onnxruntime.quantization.
        from models import bench

        return {"bench": bench.cli_bench, "calibrate": bench.cli_calibrate, "quantize": bench.cli_quantize}[
            args.command
        ](args)
    if args.command == "build":
        return _build(args.out, args.force)
    if args.command == "verify-models":
        return _verify(args.dir)
    if args.command == "verify":
        return verify_cli.run(args)
    return _list()


if __name__ == "__main__":
    sys.exit(main())
