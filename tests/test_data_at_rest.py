"""Data at rest: private modes on databases, keys and their directories, checked at start; personal data
kept for a referral only sealed (AES-GCM, device key, record id as associated data); secure_delete on."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Config
from kiosk.app import build_kiosk
from kiosk.at_rest import ExposedDataError
from kiosk.headless import run_population
from kiosk.referrals import ReferralVault
from kiosk.sealing import DataKeyError, Sealer, load_data_key
from kiosk.store import Store

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual login umask: what the kiosk creates must be private without relying on its own."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def privacy_config(tmp_path: Path, *, keep: bool = False) -> Config:
    return Config(base_dir=tmp_path, privacy={"keep_referral_details": keep})


@pytest.mark.usefixtures("loose_umask")
def test_database_and_journal_files_are_private_and_secure_delete_is_on(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.sqlite3"
    with Store.open(path) as store, Store.open(path) as second:  # the lane's and the agent's connections
        store.outbox.add("audit", {"audit": "test"})
        second.outbox.add("audit", {"audit": "test"})
        assert store.diagnostics()["secure_delete"] == 1
        assert second.diagnostics()["secure_delete"] == 1
        for name in ("kiosk.sqlite3", "kiosk.sqlite3-wal", "kiosk.sqlite3-shm"):
            assert mode(tmp_path / name) == 0o600, name
        store.backup(tmp_path / "copy.sqlite3")
    assert mode(tmp_path / "copy.sqlite3") == 0o600


@pytest.mark.usefixtures("loose_umask")
def test_kiosk_start_makes_data_and_key_directories_and_keys_private(tmp_path: Path) -> None:
    config = privacy_config(tmp_path)
    kiosk = build_kiosk(config)
    kiosk.close()
    assert mode(config.data_dir) == 0o700
    assert mode(config.fleet_key_path.parent) == 0o700
    assert mode(config.fleet_key_path) == mode(config.data_key_path) == 0o600
    assert mode(config.store_path) == 0o600


@pytest.mark.parametrize(
    ("target", "bits", "fix"),
    [
        (lambda c: c.store_path, 0o644, "chmod 600"),
        (lambda c: c.store_path.with_name(c.store_path.name + "-wal"), 0o640, "chmod 600"),
        (lambda c: c.fleet_key_path, 0o644, "chmod 600"),
        (lambda c: c.data_key_path, 0o604, "chmod 600"),
        (lambda c: c.fleet_key_path.parent, 0o755, "chmod 700"),
    ],
    ids=["database", "wal", "fleet-key", "data-key", "keys-dir"],
)
def test_kiosk_refuses_to_start_on_exposed_data(tmp_path: Path, target: object, bits: int, fix: str) -> None:
    config = privacy_config(tmp_path)
    build_kiosk(config).close()
    path = target(config)  # type: ignore[operator]
    path.touch()
    path.chmod(bits)
    with pytest.raises(ExposedDataError) as refused:
        build_kiosk(config)
    assert f"`{fix} {path}`" in str(refused.value)
    path.chmod(0o700 if path.is_dir() else 0o600)
    build_kiosk(config).close()


def test_the_cli_kiosk_and_agent_say_which_chmod_to_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    toml = tmp_path / "kiosk.toml"
    toml.write_text(f'[kiosk]\ndata_dir = "{data}"\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kiosk = [sys.executable, "-m", "kiosk", "run", "--headless", "--simulate", "--travellers", "1"]
    first = subprocess.run(
        [*kiosk, "--config", str(toml)], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    database = data / "gerbang.sqlite3"
    database.chmod(0o644)
    for command in (kiosk, [sys.executable, "-m", "edge_agent", "run"]):
        done = subprocess.run(
            [*command, "--config", str(toml)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 3, done.stderr
        assert f"run `chmod 600 {database}`" in done.stderr


def test_referral_details_are_kept_only_sealed(tmp_path: Path) -> None:
    config = privacy_config(tmp_path, keep=True)
    summary = run_population(config, 60, seed=3)
    referred = summary["decisions"].get("REFER", 0)
    assert referred > 0
    sealer = Sealer(load_data_key(config.data_key_path))
    with contextlib.closing(sqlite3.connect(config.store_path)) as conn:
        rows = conn.execute(
            "SELECT r.id, r.sealed, t.decision FROM referrals r"
            " JOIN transactions t ON t.id = r.transaction_id"
        ).fetchall()
    with Store.open(config.store_path) as store:
        vault = ReferralVault(store, sealer)
        details = [vault.details(record_id) for record_id, _, _ in rows]
    assert {decision for _, _, decision in rows} == {"REFER"}
    # Every referred traveller whose document was read has a record (a document never read has none).
    assert 0 < len(rows) <= referred
    files = b"".join(p.read_bytes() for p in config.data_dir.rglob("*") if p.is_file())
    for opened in details:
        assert opened is not None and opened["reasons"]
        for field in ("document_number", "surname"):
            assert opened[field].encode() not in files, f"{field} in clear on disk"
    # The record id is bound: a ciphertext moved to another record does not open.
    (first_id, first_sealed, _), (second_id, _, _) = rows[0], rows[1]
    with pytest.raises(DataKeyError):
        sealer.open(second_id, first_sealed)
    # Another device's key does not open it either.
    with pytest.raises(DataKeyError):
        Sealer(os.urandom(32)).open(first_id, first_sealed)


def test_nothing_personal_is_kept_unless_configured(tmp_path: Path) -> None:
    config = privacy_config(tmp_path)
    summary = run_population(config, 30, seed=3)
    assert summary["decisions"].get("REFER", 0) > 0
    with contextlib.closing(sqlite3.connect(config.store_path)) as conn:
        assert conn.execute("SELECT count(*) FROM referrals").fetchone()[0] == 0
