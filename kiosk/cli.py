"""``python -m kiosk``: run the lane (touchscreen or headless), check configuration, read an MRZ,
benchmark, render the screens.

Exit codes: 0 ok; 1 a check failed (MRZ); 2 unusable input (bad config, not an MRZ, bad usage);
3 the kiosk cannot serve (store, keys, devices) — it stays closed and says why.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from config import Config, ConfigError, load_config
from kiosk.at_rest import private_umask

EXIT_UNUSABLE_INPUT = 2
EXIT_CANNOT_SERVE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kiosk", description="Gerbang e-gate kiosk")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the lane")
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument("--headless", action="store_true", help="no UI: serve simulated travellers and exit")
    run.add_argument("--simulate", action="store_true", help="simulated devices and travellers")
    run.add_argument("--travellers", type=int, default=100, help="how many simulated travellers")
    run.add_argument("--seed", type=int, help="population seed (default: simulation.seed from config)")
    run.add_argument("--db", type=Path, help="database file (default: from config)")
    run.add_argument(
        "--wire",
        action="store_true",
        help="put the document reader, fingerprint sensor and gate IO on their wire-protocol simulators "
        "behind ptys, so every transaction runs through the real driver code",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")

    shots = sub.add_parser("screenshots", help="render every screen, language and layout to PNG (offscreen)")
    shots.add_argument("--out", type=Path, required=True, help="folder for <screen>-<lang>-<layout>.png")
    shots.add_argument("--config", type=Path, help="TOML configuration file")
    shots.add_argument("--layout", action="append", help="portrait, landscape or pi7 (default: all)")
    shots.add_argument("--language", action="append", help="id, en or zh_CN (default: all)")
    shots.add_argument("--screen", action="append", help="only these screens (default: all)")

    sub.add_parser("mrz", help="parse the MRZ lines on stdin and print one JSON object")
    sub.add_parser(
        "pin-hash",
        help="read a maintenance PIN (without echo at a terminal, else stdin's first line) and print "
        "its [ui] maintenance_pin_hash",
    )

    config = sub.add_parser("config", help="check or show configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("file", type=Path)
    show = config_sub.add_parser("show", help="print the effective configuration, secrets masked")
    show.add_argument("file", type=Path, nargs="?")

    bench = sub.add_parser("bench", help="per-stage software latency over simulated travellers")
    bench.add_argument("--travellers", type=int, default=1000)
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--config", type=Path)

    erase = sub.add_parser(
        "erase",
        help="decommissioning: remove this kiosk's databases, keys, logs and caches (not software)",
    )
    erase.add_argument("--config", type=Path, help="TOML configuration file, for its data_dir")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    from kiosk.chip.cli import add_parser as add_chip_parser
    from kiosk.ledger.cli import add_parser as add_ledger_parser

    add_chip_parser(sub)
    add_ledger_parser(sub)
    return parser


def _load(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_UNUSABLE_INPUT) from None


def _cannot_serve(exc: Exception) -> int:
    print(f"kiosk cannot serve, lane stays closed (OUT_OF_SERVICE): {exc}", file=sys.stderr)
    return EXIT_CANNOT_SERVE


def _run(args: argparse.Namespace) -> int:
    from kiosk.headless import run_population

    config = _load(args.config)
    if not args.headless:
        return _run_ui(args, config)
    if not args.simulate:
        print("a headless run needs --simulate (simulated travellers)", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    if args.travellers < 0:
        print("--travellers must be >= 0", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    seed = config.simulation.seed if args.seed is None else args.seed
    try:
        summary = run_population(config, args.travellers, seed, args.db, wire=args.wire)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    except Exception as exc:  # every start-up failure ends closed and explained, never in a crash loop
        return _cannot_serve(exc)
    print(json.dumps(summary, sort_keys=False))
    return 0


def _run_ui(args: argparse.Namespace, config: Config) -> int:
    from kiosk.ui import launch

    if args.simulate:
        config = launch.simulated_config(config)
    seed = config.simulation.seed if args.seed is None else args.seed
    try:
        return launch.run(config, db=args.db, seed=seed)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    except Exception as exc:  # every start-up failure ends closed and explained, never in a crash loop
        return _cannot_serve(exc)


def _screenshots(args: argparse.Namespace) -> int:
    import subprocess

    from kiosk.ui.languages import LANGUAGES
    from kiosk.ui.screenshots import LAYOUTS, render

    config = _load(args.config)
    layouts = tuple(args.layout or LAYOUTS)
    languages = tuple(args.language or LANGUAGES)
    unknown = [x for x in layouts if x not in LAYOUTS] + [x for x in languages if x not in LANGUAGES]
    if unknown:
        print(f"unknown layout or language: {', '.join(unknown)}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    if len(layouts) > 1:  # a window per layout: one process each
        common = [sys.executable, "-m", "kiosk", "screenshots", "--out", str(args.out)]
        common += ["--config", str(args.config)] if args.config else []
        common += [f"--language={x}" for x in languages] + [f"--screen={x}" for x in args.screen or ()]
        for layout in layouts:
            if subprocess.run([*common, f"--layout={layout}"], check=False).returncode != 0:
                return EXIT_CANNOT_SERVE
        return 0
    written = render(config, args.out, layouts[0], languages=languages, only=tuple(args.screen or ()))
    print(f"{len(written)} screenshots in {args.out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from kiosk.headless import bench

    config = _load(args.config)
    with tempfile.TemporaryDirectory(prefix="gerbang-bench-") as tmp:
        config = config.model_copy(update={"kiosk": config.kiosk.model_copy(update={"data_dir": Path(tmp)})})
        result = bench(config, args.travellers, args.seed)
    print(json.dumps(result, indent=2))
    target = 300.0
    p95 = result["to_decision_ms"]["p95"]
    print(f"decision p95 {p95:.2f} ms vs target {target:.0f} ms: ratio {p95 / target:.4f}")
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.config_command == "check":
        config = _load(args.file)
        print(f"{args.file}: OK (config version {config.version()})")
        return 0
    config = _load(args.file)
    print(json.dumps(config.masked(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    private_umask()
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "mrz":
        from kiosk.documents.mrz_cli import run

        return run(sys.stdin, sys.stdout, sys.stderr)
    if args.command == "pin-hash":
        from kiosk.pin_cli import run as run_pin_hash

        return run_pin_hash(sys.stdin, sys.stdout, sys.stderr)
    if args.command == "config":
        return _config(args)
    if args.command == "chip":
        from kiosk.chip.cli import run as run_chip

        return run_chip(args)
    if args.command == "ledger":
        from kiosk.ledger.cli import run as run_ledger

        return run_ledger(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "screenshots":
        return _screenshots(args)
    if args.command == "erase":
        from kiosk.erase import run as run_erase

        return run_erase(_load(args.config), yes=args.yes)
    return _run(args)
