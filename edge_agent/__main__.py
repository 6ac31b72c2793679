"""``python -m edge_agent``: the kiosk's link to the fleet hub.

The MQTT publisher arrives with the edge-agent issue; today it inspects the outbox the kiosk fills.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kiosk.store import Store, StoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_agent", description="Gerbang edge agent")
    sub = parser.add_subparsers(dest="command", required=True)
    outbox = sub.add_parser("outbox", help="show the outbox backlog of a kiosk database")
    outbox.add_argument("--db", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        store = Store.open(args.db)
    except StoreError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    with store:
        print(json.dumps({"backlog": store.backlog(), "datasets": store.dataset_versions()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
