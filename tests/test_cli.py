"""The command-line contracts, run as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def kiosk(
    *args: str, cwd: Path, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_headless_run_contract_and_determinism(tmp_path):
    runs = []
    for name in ("a", "b"):
        db = tmp_path / f"{name}.sqlite3"
        result = kiosk(
            "run",
            "--headless",
            "--simulate",
            "--travellers",
            "120",
            "--seed",
            "5",
            "--db",
            str(db),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1
        summary = json.loads(lines[0])
        assert summary["travellers"] == 120 and summary["gate_left_open"] == 0
        assert sum(summary["decisions"].values()) == 120
        assert {"OPEN", "REFER", "ABANDONED"} <= set(summary["decisions"])
        for stats in summary["stage_ms"].values():
            assert 0 <= stats["p50"] <= stats["p95"]
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert (
                conn.execute("select count(*) from transactions where status='finished'").fetchone()[0] == 120
            )
        runs.append(summary)
    assert runs[0]["decisions"] == runs[1]["decisions"] and runs[0]["reasons"] == runs[1]["reasons"]


def test_invalid_config_refuses_to_start_with_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[flow]\nentry_timeout_s = 0\n")
    result = kiosk("run", "--headless", "--simulate", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert str(bad) in result.stderr and "flow.entry_timeout_s" in result.stderr
    assert result.stdout == ""


def test_config_check_and_show(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(
        '[kiosk]\nid = "lbw-03"\n[devices.fingerprint]\nbackend = "serial"\nport = "/dev/fingerprint"\n'
        "[devices.fingerprint.options]\npassword = 987654321\n"
    )
    assert kiosk("config", "check", str(good), cwd=tmp_path).returncode == 0
    shown = kiosk("config", "show", str(good), cwd=tmp_path)
    assert shown.returncode == 0
    effective = json.loads(shown.stdout)
    assert effective["kiosk"]["id"] == "lbw-03" and effective["flow"]["face_timeout_s"] == 20.0
    assert (
        "987654321" not in shown.stdout
        and effective["devices"]["fingerprint"]["options"]["password"] == "***"
    )
    assert kiosk("config", "check", str(tmp_path / "nope.toml"), cwd=tmp_path).returncode == 2


def test_missing_database_directory_is_a_clear_error(tmp_path):
    db = tmp_path / "no-such-dir" / "k.sqlite3"
    result = kiosk("run", "--headless", "--simulate", "--travellers", "3", "--db", str(db), cwd=tmp_path)
    assert result.returncode == 3
    assert "OUT_OF_SERVICE" in result.stderr and "no-such-dir" in result.stderr
    assert "Traceback" not in result.stderr


@contextmanager
def mounted_tmpfs(path: Path, options: str):
    """A real small or read-only filesystem (the SD card that filled up or was remounted ro)."""
    path.mkdir()
    if os.geteuid() != 0:
        raise AssertionError("this test mounts a tmpfs and must run as root (CI and ./gerbang test do)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_database_directory_is_a_clear_error(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        result = kiosk(
            "run",
            "--headless",
            "--simulate",
            "--travellers",
            "2",
            "--db",
            str(ro / "k.sqlite3"),
            cwd=tmp_path,
        )
    assert result.returncode == 3, result.stderr
    assert "OUT_OF_SERVICE" in result.stderr and "ro" in result.stderr
    assert "Traceback" not in result.stderr


def fill(directory: Path, leave_bytes: int) -> None:
    """Fill the filesystem, then free ``leave_bytes`` again."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave_bytes))


def finished_transactions(db: Path) -> tuple[int, str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        finished = conn.execute("select count(*) from transactions where status='finished'").fetchone()[0]
        return finished, conn.execute("pragma integrity_check").fetchone()[0]


def test_full_disk_stops_the_lane_closed_and_keeps_what_was_recorded(tmp_path):
    args = ("run", "--headless", "--simulate", "--seed", "5", "--travellers")
    with mounted_tmpfs(tmp_path / "small", "size=8m") as small:
        db = small / "k.sqlite3"
        first = kiosk(*args, "100", "--db", str(db), cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        before, _ = finished_transactions(db)
        assert before == 100
        fill(small, leave_bytes=48 * 1024)
        # Same seed and count: the reference data is already in place, so the disk fills mid-run.
        second = kiosk(*args, "100", "--db", str(db), cwd=tmp_path)
        after, integrity = finished_transactions(db)
    assert "Traceback" not in second.stderr
    assert integrity == "ok" and before <= after < 200
    if second.returncode == 0:
        summary = json.loads(second.stdout)
        assert summary["decisions"].get("OUT_OF_SERVICE", 0) > 0 and summary["gate_left_open"] == 0
    else:
        assert second.returncode == 3 and "full" in second.stderr


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from config import Config
    from kiosk.app import build_kiosk
    from kiosk.flow.states import State
    from kiosk.simulation.population import traveller_of, reference_datasets
    from kiosk.store import canonical_sha256

    kiosk = build_kiosk(Config(base_dir=Path(sys.argv[1])))
    kiosk.engine.start()
    today = kiosk.clock.now().date()
    t = traveller_of("citizen", seed=1, today=today)
    for name, records in reference_datasets([t], kiosk.hasher, today).items():
        kiosk.store.reference_data.apply(name, "k-" + canonical_sha256(records)[:16], records)

    def freeze(event):
        if event.state is State.ENTRY_OPEN and kiosk.engine.devices.gate.entry_unlocked():
            print("ENTRY_OPEN", flush=True)
            time.sleep(600)

    kiosk.engine.subscribe(freeze)
    kiosk.lane.arrive(t)
    kiosk.engine.run_once(1.0)
    """
)


def test_kill_9_mid_transaction_is_recorded_as_aborted_on_restart(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout.readline().strip() == "ENTRY_OPEN"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    from config import Config
    from kiosk.app import build_kiosk

    restarted = build_kiosk(Config(base_dir=tmp_path))
    try:
        aborted = restarted.engine.start()
        assert len(aborted) == 1
        row = restarted.store.transactions.get(aborted[0])
        assert row["status"] == "aborted" and row["decision"] == "ABORTED"
        alerts = [json.loads(e.payload) for e in restarted.store.outbox.pending(50) if e.type == "alert"]
        assert any(a.get("transaction_id") == aborted[0] for a in alerts)
        assert not restarted.engine.devices.gate.entry_unlocked()
    finally:
        restarted.close()


def test_mrz_cli_contract_end_to_end(tmp_path):
    specimen = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10\n"
    result = kiosk("mrz", cwd=tmp_path, stdin="\n  " + specimen + "\n\n")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert parsed["format"] == "TD3" and parsed["document_number"] == "L898902C3"
    assert parsed["birth_date"] == "1974-08-12" and parsed["valid"] is True
    broken = kiosk("mrz", cwd=tmp_path, stdin="hello world\n")
    assert broken.returncode == 2 and broken.stdout == "" and broken.stderr.strip().count("\n") == 0


def test_every_package_has_an_entry_point(tmp_path):
    for package in ("kiosk", "drivers", "edge_agent", "models", "provisioning"):
        result = subprocess.run(
            [sys.executable, "-m", package, "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
        )
        assert result.returncode == 0 and "usage" in result.stdout.lower(), package
