"""``python -m kiosk chip ...``: the chip commands (the test passport issuer, the trust store import).

Exit codes: 0 done; 2 unusable input (bad MRZ or image, a file refused by the trust store).
"""

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

    trust = chip_sub.add_parser("trust", help="the passive-authentication trust store")
    trust_sub = trust.add_subparsers(dest="trust_command", required=True)
    trust_import = trust_sub.add_parser(
        "import", help="check CSCA certificates, ICAO master lists and CRLs, then copy them into the store"
    )
    trust_import.add_argument("files", type=Path, nargs="+")
    trust_import.add_argument(
        "--store", type=Path, help="trust store folder (default: chip-trust in the kiosk's data_dir)"
    )
    trust_import.add_argument("--config", type=Path, help="TOML configuration file, for its data_dir")


def run(args: argparse.Namespace) -> int:
    if args.chip_command == "issue":
        return _issue(args)
    if args.chip_command == "trust":
        return _trust_import(args)
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


def _trust_import(args: argparse.Namespace) -> int:
    """Each file is checked against the store as it stands (a master list's signer must chain to a
    CSCA) before it is copied in; a refused file changes nothing. The folder is the one
    :func:`kiosk.chip.trust_source.load_trust` reads beside the synced ``chip_trust`` dataset."""
    import hashlib

    from config import ConfigError, load_config
    from kiosk.chip.trust import TrustStore
    from kiosk.chip.trust_source import technician_folder

    if args.store is not None:
        folder = args.store
    else:
        try:
            folder = technician_folder(load_config(args.config))
        except ConfigError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE_INPUT
    folder.mkdir(parents=True, exist_ok=True)
    store = TrustStore.load(folder)
    imported, refused = [], []
    for path in args.files:
        try:
            data = path.read_bytes()
            # Added to a copy: a file refused half-way (a PEM whose second block is bad) must leave
            # nothing of itself in the store the next files are checked against.
            trial = TrustStore(list(store.cscas), list(store.crls))
            items = trial.add(data)
        except (OSError, ValueError) as exc:  # TrustError, and cryptography's parse errors
            refused.append({"file": str(path), "reason": " ".join(str(exc).split())})
            continue
        target = folder / path.name
        if target.exists() and target.read_bytes() != data:
            target = folder / f"{path.stem}-{hashlib.sha256(data).hexdigest()[:8]}{path.suffix}"
        target.write_bytes(data)
        store = trial
        kinds = sorted({item.kind for item in items})
        imported.append({"file": str(path), "kind": ", ".join(kinds), "stored": target.name})
    print(json.dumps({"imported": imported, "refused": refused, "cscas": len(store.cscas)}))
    return EXIT_UNUSABLE_INPUT if refused else 0
