"""``python -m hub consume`` and ``python -m hub report``: the headless, durable event consumer.

``consume`` de-duplicates every kiosk event into a SQLite ledger, asks kiosks (signed ``resend``) for
whatever a broker lost, and publishes each kiosk's acknowledgement watermark; its whole state is in the
ledger, so a restarted consumer continues where it stopped. ``report`` prints what the ledger holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from contract import schema
from contract.broker import TlsOptions, check_transport, parse_broker
from hub.consumer import EventConsumer
from hub.ledger import EventLedger
from hub.signer import load_private_key

COMMANDS = ("consume", "report")


def add_parsers(sub: Any) -> None:
    consume = sub.add_parser("consume", help="store every kiosk event exactly once, repairing gaps")
    consume.add_argument("--broker", required=True, help="mqtt://HOST:PORT or mqtts://HOST:PORT")
    consume.add_argument("--db", type=Path, required=True, help="the hub's event ledger (SQLite)")
    consume.add_argument("--command-key", type=Path, required=True, help="hub command PRIVATE key (PEM)")
    consume.add_argument("--client-id", default="gerbang-hub-consumer")
    consume.add_argument("--recover-after", type=float, default=5.0, help="seconds a gap may stay open")
    consume.add_argument("--retry", type=float, default=15.0, help="seconds between resends of one gap")
    consume.add_argument("--ca-file", type=Path)
    consume.add_argument("--cert-file", type=Path)
    consume.add_argument("--key-file", type=Path)
    consume.add_argument("--username")
    consume.add_argument("--password-file", type=Path)
    consume.add_argument("-v", "--verbose", action="store_true")
    report = sub.add_parser("report", help="print per kiosk: unique events, last contiguous seq, gaps")
    report.add_argument("--db", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    if args.command == "report":
        if not args.db.exists():
            print(f"no ledger at {args.db}", file=sys.stderr)
            return 2
        with EventLedger.open(args.db) as ledger:
            print(json.dumps(ledger.report(), sort_keys=True))
        return 0
    return _consume(args)


def _consume(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        scheme, host, port = parse_broker(args.broker)
        # The hub's own host is the operator's choice; only the password-in-clear rule applies here.
        check_transport(
            args.broker, sends_password=args.password_file is not None, plain_allowed_off_loopback=True
        )
        key = load_private_key(args.command_key)
        password = args.password_file.read_text(encoding="utf-8").strip() if args.password_file else None
        if scheme == "mqtts" and args.ca_file is None:
            raise ValueError("mqtts:// needs --ca-file: the broker's certificate is always verified")
    except (OSError, ValueError) as exc:
        print(f"cannot start the consumer: {exc}", file=sys.stderr)
        return 2
    tls = TlsOptions(args.ca_file, args.cert_file, args.key_file) if scheme == "mqtts" else None
    stop = threading.Event()

    def _terminate(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    with EventLedger.open(args.db) as ledger:
        consumer = EventConsumer(
            signing_key=key,
            recover_after_s=args.recover_after,
            retry_s=args.retry,
            validate=schema.validate,
            ledger=ledger,
        )
        consumer.start(
            host,
            port,
            args.client_id,
            reconnect_delay=(0.5, 5.0),
            tls=tls,
            username=args.username,
            password=password,
        )
        stop.wait()
        consumer.stop()
    return 0
