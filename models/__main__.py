"""``python -m models``: face-model tooling.

list                       the face matchers this build provides
build [--out DIR] [--force]   convert the dlib models into DIR (default <repo>/var/models)
verify-models [--dir DIR]  check every model against its manifest; exit 1 if any is unusable
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    args = parser.parse_args(argv)
    if args.command == "build":
        return _build(args.out, args.force)
    if args.command == "verify-models":
        return _verify(args.dir)
    return _list()


if __name__ == "__main__":
    sys.exit(main())
