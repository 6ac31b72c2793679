"""``python -m edge_agent``: the kiosk's link to the fleet hub.

``run`` drains the outbox to an MQTT broker until SIGTERM; ``outbox`` inspects the backlog; ``bench``
prints the agent's benchmarks (edge_agent/bench.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from config import ConfigError, load_config
from edge_agent.agent import Overrides, build_publisher
from kiosk.at_rest import ExposedDataError, check_private, database_files, private_umask
from kiosk.store import Store, StoreError


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    db = args.db or config.store_path
    secrets = [config.data_path(config.agent.password_file), config.data_path(config.agent.tls.key_file)]
    try:
        check_private([*database_files(db), *(path for path in secrets if path is not None)])
    except ExposedDataError as exc:
        print(f"cannot start the agent: {exc}", file=sys.stderr)
        return 3
    try:
        store = Store.open(db)
    except StoreError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    overrides = Overrides(
        broker=args.broker,
        site=args.site,
        kiosk=args.kiosk,
        mqtt5=args.mqtt5,
        keepalive_s=args.keepalive,
        backoff_initial_s=args.backoff_initial,
        backoff_max_s=args.backoff_max,
        command_key=args.hub_key,
        sync_key=args.sync_key,
    )
    try:
        publisher = build_publisher(config, store, overrides)
    except (OSError, ValueError) as exc:
        store.close()
        print(f"cannot start the agent: {exc}", file=sys.stderr)
        return 2

    def _terminate(_signum: int, _frame: FrameType | None) -> None:
        publisher.stop()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    with store:
        publisher.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    private_umask()
    parser = argparse.ArgumentParser(prog="python -m edge_agent", description="Gerbang edge agent")
    sub = parser.add_subparsers(dest="command", required=True)
    outbox = sub.add_parser("outbox", help="show the outbox backlog of a kiosk database")
    outbox.add_argument("--db", type=Path, required=True)
    run = sub.add_parser("run", help="publish the outbox to an MQTT broker until SIGTERM")
    run.add_argument("--db", type=Path, help="kiosk database (default: from the config)")
    run.add_argument("--broker", help="mqtt://HOST:PORT or mqtts://HOST:PORT (default: agent.broker)")
    run.add_argument("--site")
    run.add_argument("--kiosk")
    run.add_argument("--config", type=Path)
    run.add_argument("--keepalive", type=int)
    run.add_argument("--mqtt5", action="store_true", help="speak MQTT 5 even if the config says 3.1.1")
    run.add_argument("--backoff-initial", type=float)
    run.add_argument("--backoff-max", type=float)
    run.add_argument("--hub-key", type=Path, help="hub's command-signing public key (PEM); enables commands")
    run.add_argument("--sync-key", type=Path, help="hub's bundle-signing public key (PEM); enables sync")
    run.add_argument("-v", "--verbose", action="store_true")
    bench = sub.add_parser("bench", help="drain rate, agent RSS and broker fan-in against a local mosquitto")
    bench.add_argument("--events", type=int, default=50_000, help="backlog to drain (0: skip)")
    bench.add_argument("--kiosks", type=int, default=500, help="simulated kiosks for the fan-in (0: skip)")
    bench.add_argument("--duration", type=float, default=60.0, help="fan-in seconds")
    bench.add_argument("--processes", type=int, default=4, help="fan-in client processes")
    bench.add_argument("--interval", type=float, default=5.0, help="seconds between a kiosk's state+metrics")
    args = parser.parse_args(argv)
    if args.command == "bench":
        from edge_agent import bench as agent_bench

        return agent_bench.main(args.events, args.kiosks, args.duration, args.processes, args.interval)
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
        print(
            json.dumps(
                {"backlog": store.outbox.backlog(), "datasets": store.reference_data.dataset_versions()}
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
