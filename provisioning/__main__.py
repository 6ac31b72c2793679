"""``python -m provisioning``: technician tasks on a kiosk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kiosk.at_rest import private_umask
from kiosk.privacy import FleetKeyError, load_fleet_key


def main(argv: list[str] | None = None) -> int:
    private_umask()
    parser = argparse.ArgumentParser(prog="python -m provisioning", description="Gerbang technician tasks")
    sub = parser.add_subparsers(dest="command", required=True)
    key = sub.add_parser("fleet-key", help="create a new random fleet key file (mode 0600); never overwrites")
    key.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    if args.path.exists():
        print(f"{args.path} exists; refusing to overwrite a fleet key", file=sys.stderr)
        return 2
    try:
        load_fleet_key(args.path, create=True)
    except (FleetKeyError, OSError) as exc:
        print(f"cannot create {args.path}: {exc}", file=sys.stderr)
        return 3
    print(f"created {args.path}; copy the same key to every kiosk of the fleet and to the hub")
    return 0


if __name__ == "__main__":
    sys.exit(main())
