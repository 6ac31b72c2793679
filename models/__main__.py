"""``python -m models``: face-model tooling (the commands live in ``models.tools``, never on a kiosk's
run-time path).

list                       the face matchers this build provides
build [--out DIR] [--force]   convert the dlib models into DIR (default <repo>/var/models) and
                           quantize the int8 descriptor from the committed ranges (no faces needed)
verify-models [--dir DIR]  check every model against its manifest; exit 1 if any is unusable
verify --pairs FILE --root DIR [--model-dir DIR] [--threads N]
                           score image pairs with the face pipeline (see models/tools/verify_cli.py)
bench --data DIR           accuracy and latency on the LFW dev set, ours (fp32/int8) vs dlib
calibrate --data DIR [--only ranges|thresholds]
                           recompute the int8 activation ranges and the thresholds from real faces
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.matching import ModelUnavailable
from models.model_files import default_model_dir
from models.simulated import SimulatedFaceMatcher
from models.tools import verify_cli


def _list() -> int:
    print(f"simulated: {SimulatedFaceMatcher.model_version}")
    return 0


def _build(out: Path | None, force: bool) -> int:
    # Imported here: building needs the onnx package and the model wheel, the rest of the CLI does not.
    from models.tools.build import build_all

    target = out if out is not None else default_model_dir()
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
    from models.tools.build import verify_all

    target = directory if directory is not None else default_model_dir()
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
        "calibrate",
        help="from real faces: the int8 activation ranges, then the thresholds at FMR 1e-2/1e-3/1e-4",
    )
    calibrate.add_argument("--data", type=Path, required=True, help=data_help)
    calibrate.add_argument(
        "--only", choices=("ranges", "thresholds"), default=None, help="one of the two steps (default both)"
    )
    calibrate.add_argument("--models", type=Path, default=None, help=models_help)
    calibrate.add_argument(
        "--images", type=int, default=256, help="range calibration images, each + mirror (default 256)"
    )
    calibrate.add_argument("--seed", type=int, default=20261127, help="range calibration sample seed")
    calibrate.add_argument(
        "--activations", choices=("u8", "s8"), default="u8", help="int8 activation type (default u8)"
    )
    calibrate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="thresholds JSON (default models/calibration/dlib_resnet_v1.json)",
    )
    calibrate.add_argument(
        "--limit", type=int, default=None, help="thresholds on the first N images only (writes under var/)"
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
    if args.command in ("bench", "calibrate"):
        # Imported here: these need the LFW data, dlib-bin (bench) and onnxruntime.quantization.
        from models.tools import cli

        return {"bench": cli.cli_bench, "calibrate": cli.cli_calibrate}[args.command](args)
    if args.command == "build":
        return _build(args.out, args.force)
    if args.command == "verify-models":
        return _verify(args.dir)
    if args.command == "verify":
        return verify_cli.run(args)
    return _list()


if __name__ == "__main__":
    sys.exit(main())
