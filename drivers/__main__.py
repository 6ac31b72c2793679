"""``python -m drivers``: device tooling (simulators and discovery come with the drivers issue)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drivers", description="Gerbang device drivers")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backends", help="list the device backends this build provides")
    parser.parse_args(argv)
    for device in ("document_reader", "camera", "fingerprint", "gate"):
        print(f"{device}: simulated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
