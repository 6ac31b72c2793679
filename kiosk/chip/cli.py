"""``python -m kiosk chip ...``: the chip commands: read a passport's chip, benchmark chip reads,
issue test passports, manage the trust store.

Exit codes: ``issue`` and ``trust import``: 0 done; 2 unusable input (bad MRZ or image, a file
refused by the trust store). ``read``: 0 authentic; 1 read, but an authentication check failed; 2 no
reader, no chip, access control failed (wrong MRZ) or the chip cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_UNUSABLE_INPUT = 2
EXIT_NOT_AUTHENTIC = 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    chip = sub.add_parser(
        "chip", help="ePassport chip: read and check one, benchmark, issue test passports, trust store"
    )
    chip_sub = chip.add_subparsers(dest="chip_command", required=True)
    read = chip_sub.add_parser(
        "read",
        help="read the chip on a PC/SC reader with the MRZ, check it, print one JSON object",
        description="Read the ePassport chip on the first (or the named) PC/SC reader, opened with the "
        "MRZ lines of --mrz-file (PACE, else BAC); check DG1 against that MRZ, passive and active "
        "authentication; print one JSON object. Exit 0 authentic, 1 an authentication check failed, "
        "2 no reader or chip, wrong MRZ, or unreadable chip. Nothing read is written anywhere unless "
        "--portrait-out asks for the portrait.",
    )
    read.add_argument("--mrz-file", type=Path, required=True, help="file with the printed MRZ lines")
    read.add_argument("--reader", help="PC/SC reader name (or its beginning); default: the first reader")
    read.add_argument(
        "--trust",
        type=Path,
        help="folder of CSCA certificates (DER or PEM) or an ICAO master list file; "
        "default: the folder `chip trust import` fills (chip-trust in the kiosk's data_dir), if any",
    )
    read.add_argument(
        "--portrait-out",
        type=Path,
        help="write the DG2 portrait bytes here. The ONLY way chip data reaches disk: for a technician "
        "who explicitly asks; the kiosk itself keeps the portrait in memory for the transaction only",
    )
    read.add_argument(
        "--wait", type=float, default=3.0, help="seconds to wait for a chip on the reader (default 3)"
    )
    bench = chip_sub.add_parser(
        "bench", help="APDUs, bytes and time of chip reads over pcscd + vpcd; real-reader estimate"
    )
    bench.add_argument("--vpcd-port", type=int, default=35963, help="vpcd port (reader 00 00 by default)")
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
    if args.chip_command == "read":
        return _read(args)
    if args.chip_command == "bench":
        from kiosk.chip.bench import run as run_bench

        return run_bench(args.vpcd_port)
    if args.chip_command == "issue":
        return _issue(args)
    if args.chip_command == "trust":
        return _trust_import(args)
    raise AssertionError(args.chip_command)


def _fail(code: int, reason: str) -> int:
    print(f"chip read: {' '.join(reason.split())}", file=sys.stderr)
    return code


def _read(args: argparse.Namespace) -> int:
    from config import Config
    from drivers.chip.errors import ChipError
    from drivers.chip.reader import PcscChipReader
    from kiosk.chip.reading import read_document
    from kiosk.chip.trust import TrustStore
    from kiosk.chip.trust_source import technician_folder
    from kiosk.documents.mrz import NotAnMrz, parse_mrz

    try:
        mrz = parse_mrz(args.mrz_file.read_text())
    except (OSError, NotAnMrz) as exc:
        return _fail(EXIT_UNUSABLE_INPUT, f"no MRZ: {exc}")
    if args.trust is not None and not args.trust.exists():
        return _fail(EXIT_UNUSABLE_INPUT, f"no trust store at {args.trust}")
    trust_path = args.trust or technician_folder(Config())
    # No trust store at all is a valid state: every chip then fails as UNKNOWN_CSCA (exit 1).
    trust = TrustStore.load(trust_path) if trust_path.exists() else TrustStore()
    reader = PcscChipReader(args.reader)
    try:
        if not reader.wait_for_card(args.wait):
            return _fail(EXIT_UNUSABLE_INPUT, "no chip on the reader")
        result = read_document(reader, mrz, trust)
    except ChipError as exc:
        return _fail(EXIT_UNUSABLE_INPUT, f"{type(exc).__name__}: {exc.reason}")
    except ValueError as exc:  # an MRZ without the dates a chip key needs
        return _fail(EXIT_UNUSABLE_INPUT, str(exc))
    finally:
        reader.close()
    if args.portrait_out is not None and result.portrait is not None:
        args.portrait_out.write_bytes(result.portrait.data)
    print(json.dumps(result.to_json()))
    if not result.authentic:
        print(f"chip read: not authentic: {', '.join(result.reasons)}", file=sys.stderr)
        return EXIT_NOT_AUTHENTIC
    return 0


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
