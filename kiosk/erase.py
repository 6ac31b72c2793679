"""``python -m kiosk erase``: wipe a decommissioned kiosk's data, never its software.

Everything under the data directory goes (databases, keys, the hub's settings, the chip trust store,
logs, caches), except the face models, which are software built at install; so do the database and key
files the configuration places outside it. A data directory that holds software (a source checkout or
the installed package) is refused rather than emptied. Files are unlinked, not overwritten: on flash
storage an overwrite lands elsewhere anyway; the databases were written with secure_delete, and the
device key that sealed the referral details is removed with them.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from config import Config
from kiosk.at_rest import database_files

# Built at install (python -m models build), not data: left in place.
KEEP = frozenset({"models"})
CONFIRMATION = "ERASE"
SOFTWARE_MARKERS = (".git", "pyproject.toml", "kiosk/__init__.py")


def targets(config: Config) -> list[Path]:
    """What erase removes, outermost first; raises ValueError if the data directory holds software."""
    data_dir = config.data_dir.resolve()
    installed = Path(__file__).resolve().parents[1]
    if any((data_dir / marker).exists() for marker in SOFTWARE_MARKERS) or installed.is_relative_to(data_dir):
        raise ValueError(f"{data_dir} holds software, not only kiosk data: refusing to erase it")
    found: list[Path] = []
    if data_dir.is_dir():
        found += sorted(p for p in data_dir.iterdir() if p.name not in KEEP)
    outside = [
        *database_files(config.store_path),
        config.fleet_key_path,
        config.data_key_path,
        config.data_path(config.agent.password_file),
        config.data_path(config.agent.tls.key_file),
    ]
    found += [
        p
        for p in outside
        if p is not None and (p.exists() or p.is_symlink()) and not p.resolve().is_relative_to(data_dir)
    ]
    return found


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def run(config: Config, *, yes: bool, ask: Callable[[str], str] = input) -> int:
    """Exit 0 when erased (or nothing to erase), 1 when not confirmed, 2 when refused."""
    try:
        doomed = targets(config)
    except ValueError as exc:
        print(f"erase: {exc}", file=sys.stderr)
        return 2
    if not doomed:
        print(f"nothing to erase in {config.data_dir}")
        return 0
    print(f"erase will remove {len(doomed)} item(s) of kiosk data:")
    for path in doomed:
        print(f"  {path}")
    if not yes:
        if not sys.stdin.isatty():
            print("erase: not confirmed (pass --yes, or run it on a terminal)", file=sys.stderr)
            return 1
        if ask(f"type {CONFIRMATION} to erase this kiosk's data: ").strip() != CONFIRMATION:
            print("erase: not confirmed; nothing removed", file=sys.stderr)
            return 1
    for path in doomed:
        remove(path)
        print(f"removed {path}")
    return 0
