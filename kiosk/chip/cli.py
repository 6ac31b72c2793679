"""``python -m kiosk chip ...``: the chip commands (the test passport issuer, the trust store)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_UNUSABLE_INPUT = 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    chip = sub.add_parser("chip", help="ePassport chip: issue test passports, manage the trust store")
    chip_sub = chip.add_subparsers(dest="chip_command", required=True)
    issue = chip_sub.add_parser(
        "issue", help="write a TEST passport's chip files (LDS) signed by a test PKI, for simulation"
    )
    issue.add_argument("--mrz-file", type=Path, required=True, help="file with the MRZ lines")
    issue.add_argument("--portrait", type=Path, required=True, help="face image (any format OpenCV reads)")
    issue.add_argument("--out", type=Path, required=True, help="folder for COM.bin, DG1.bin, ... SOD.bin")
    issue.add_argument(
        "--ca", type=Path, default=Path("var/test-pki"), help="test CSCA/DS folder, created if missing"
    )
    issue.add_argument("--jpeg2000", action="store_true", help="store the portrait as JPEG 2000")
    issue.add_argument("--aa", choices=("rsa", "ec"), help="Active Authentication key (DG15, AA.key.pem)")
    issue.add_argument("--pace", action="store_true", help="offer PACE (EF.CardAccess)")


def run(args: argparse.Namespace) -> int:
    if args.chip_command == "issue":
        return _issue(args)
    raise AssertionError(args.chip_command)


def _issue(args: argparse.Namespace) -> int:
    from kiosk.chip.issue import IssueError, issue
    from kiosk.documents.mrz import NotAnMrz

    try:
        lds = issue(
            args.mrz_file.read_text(), args.portrait, args.out, args.ca, args.jpeg2000, args.aa, args.pace
        )
    except (OSError, NotAnMrz, IssueError) as exc:
        print(f"cannot issue: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    files = sorted(f"{name}.bin" for name in lds) + (["AA.key.pem"] if args.aa else [])
    print(json.dumps({"out": str(args.out), "files": files, "ca": str(args.ca), "test_pki": True}))
    return 0
