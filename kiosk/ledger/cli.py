"""``python -m kiosk ledger ...``: verify the audit ledger, print proofs, check a proof, benchmark.

Exit codes: 0 intact / the proof holds; 1 the ledger does not verify (the first mismatch is named on
stderr) / the proof does not hold / nothing to prove against; 2 unusable input (no such database,
unreadable file, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_MISMATCH = 1
EXIT_UNUSABLE_INPUT = 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    ledger = sub.add_parser("ledger", help="the tamper-evident audit ledger: verify, prove, check, bench")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    verify = ledger_sub.add_parser(
        "verify",
        help="recompute the whole ledger and cross-check the rows it vouches for; exit 1 naming the "
        "first entry that does not match",
    )
    verify.add_argument("--db", type=Path, required=True)
    verify.add_argument("--key", type=Path, help="device public key (PEM) to check the signed heads with")
    prove = ledger_sub.add_parser("prove", help="inclusion proof of one entry against the latest signed head")
    prove.add_argument("--db", type=Path, required=True)
    prove.add_argument("--entry", type=int, required=True)
    consistency = ledger_sub.add_parser("consistency", help="consistency proof between two tree sizes")
    consistency.add_argument("--db", type=Path, required=True)
    consistency.add_argument("--from", dest="old", type=int, required=True)
    consistency.add_argument("--to", dest="new", type=int, required=True)
    check = ledger_sub.add_parser("check", help="check a proof (JSON) against a signed head (JSON)")
    check.add_argument("--proof", type=Path, required=True)
    check.add_argument("--head", type=Path, required=True, help="a signed tree head you hold")
    check.add_argument("--key", type=Path, required=True, help="the device public key (PEM)")
    bench = ledger_sub.add_parser("bench", help="append cost per transaction, verify time, proof time")
    bench.add_argument("--entries", type=int, default=1_000_000, help="ledger size for the verify timing")
    bench.add_argument("--transactions", type=int, default=2000, help="transactions for the append timing")


def _fail(message: str, code: int = EXIT_MISMATCH) -> int:
    print(message, file=sys.stderr)
    return code


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def run(args: argparse.Namespace) -> int:
    from contract.signing import load_public_key
    from contract.tree_head import TreeHead, key_id
    from kiosk.ledger import proofs
    from kiosk.store import Store, StoreError
    from kiosk.store.ledger_verify import verify

    if args.ledger_command == "bench":
        from kiosk.ledger.bench import run_bench

        print(json.dumps(run_bench(args.entries, args.transactions), indent=2))
        return 0
    if args.ledger_command == "check":
        try:
            key = load_public_key(args.key)
            head = TreeHead.from_json(_read_json(args.head))
            proof = _read_json(args.proof)
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read the proof, head or key: {exc}", EXIT_UNUSABLE_INPUT)
        problem = proofs.check(proof, head, key) if isinstance(proof, dict) else "not a proof"
        if problem is not None:
            return _fail(f"proof does NOT hold: {problem}")
        print(f"proof holds against the signed head of {head.size} entries ({head.ts}, key {head.key_id})")
        return 0
    if not args.db.is_file():
        return _fail(f"no database at {args.db}", EXIT_UNUSABLE_INPUT)
    try:
        with Store.open(args.db) as store:
            if args.ledger_command == "verify":
                keys = {}
                if args.key is not None:
                    public = load_public_key(args.key)
                    keys[key_id(public)] = public
                result = verify(store.ledger, keys)
                if not result.ok:
                    return _fail(result.summary())
                print(result.summary())
                return 0
            if args.ledger_command == "prove":
                head = store.ledger.latest_head(covering=args.entry + 1)
                if head is None:
                    return _fail(f"entry {args.entry} is not covered by any signed head yet")
                print(json.dumps(proofs.inclusion(store.ledger, args.entry, head), indent=2))
                return 0
            print(json.dumps(proofs.consistency(store.ledger, args.old, args.new), indent=2))
            return 0
    except (OSError, ValueError) as exc:
        return _fail(f"unusable input: {exc}", EXIT_UNUSABLE_INPUT)
    except StoreError as exc:
        return _fail(str(exc))
