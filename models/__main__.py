"""``python -m models``: face-model tooling (build, verify and bench come with the face-pipeline issue)."""

from __future__ import annotations

import argparse
import sys

from models.simulated import SimulatedFaceMatcher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description="Gerbang face models")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the face matchers this build provides")
    parser.parse_args(argv)
    print(f"simulated: {SimulatedFaceMatcher.model_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
