"""``python -m edge_agent``: the kiosk's link to the fleet hub.

``run`` drains the outbox to an MQTT broker until SIGTERM; ``outbox`` inspects the backlog.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from drivers.backoff import Backoff
from edge_agent.commands import CommandHandler, load_public_key
from edge_agent.publisher import Publisher, PublisherOptions
from edge_agent.topics import Topics
from kiosk.config import ConfigError, load_config
from kiosk.store import Store, StoreError


def _broker(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"broker must look like mqtt://HOST:PORT, got {url!r}")
    return parts.hostname, parts.port or 1883


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        host, port = _broker(args.broker)
        topics = Topics(args.site or config.kiosk.site, args.kiosk or config.kiosk.id)
    except (ConfigError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    db = args.db or config.store_path
    try:
        store = Store.open(db)
    except StoreError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    options = PublisherOptions(
        host=host,
        port=port,
        keepalive_s=args.keepalive,
        mqtt_version=5 if args.mqtt5 else 4,
        mode="training" if config.kiosk.training else "live",
        backoff=Backoff(initial_s=args.backoff_initial, maximum_s=args.backoff_max),
    )
    commands = None
    if args.hub_key is not None:
        try:
            commands = CommandHandler(store, topics, load_public_key(args.hub_key))
        except (OSError, ValueError) as exc:
            print(f"cannot load hub key: {exc}", file=sys.stderr)
            return 2
    publisher = Publisher(store, topics, options, commands)

    def _terminate(_signum: int, _frame: FrameType | None) -> None:
        publisher.stop()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    with store:
        publisher.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_agent", description="Gerbang edge agent")
    sub = parser.add_subparsers(dest="command", required=True)
    outbox = sub.add_parser("outbox", help="show the outbox backlog of a kiosk database")
    outbox.add_argument("--db", type=Path, required=True)
    run = sub.add_parser("run", help="publish the outbox to an MQTT broker until SIGTERM")
    run.add_argument("--db", type=Path, help="kiosk database (default: from the config)")
    run.add_argument("--broker", required=True, help="mqtt://HOST:PORT")
    run.add_argument("--site")
    run.add_argument("--kiosk")
    run.add_argument("--config", type=Path)
    run.add_argument("--keepalive", type=int, default=30)
    run.add_argument("--mqtt5", action="store_true", help="speak MQTT 5 instead of 3.1.1")
    run.add_argument("--backoff-initial", type=float, default=0.5)
    run.add_argument("--backoff-max", type=float, default=30.0)
    run.add_argument("--hub-key", type=Path, help="hub's Ed25519 public key (PEM); enables commands")
    run.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "run":
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return _run(args)
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
