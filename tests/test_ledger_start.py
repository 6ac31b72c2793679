"""The kiosk verifies its audit ledger at start: intact it signs a head and serves; tampered it stays
out of service, says why and raises the alert. Also: kill -9 while appending never breaks the ledger."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from config import Config
from kiosk.app import build_kiosk
from kiosk.cli import main
from kiosk.ledger.device_key import load_device_key
from kiosk.store import Store
from tests.ledger_fixtures import entry, populate, raw, rewrite_entry

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60.0


def test_first_start_creates_the_device_key_and_signs_a_head(sim_config: Config) -> None:
    kiosk = build_kiosk(sim_config)
    try:
        assert kiosk.engine.ledger_problem is None
        head = kiosk.store.ledger.latest_head()
        assert head is not None and head.size == 0
    finally:
        kiosk.close()
    key_file = sim_config.device_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = build_kiosk(sim_config)  # the same key is loaded, not replaced
    try:
        latest = again.store.ledger.latest_head()
        assert latest is not None and latest.key_id == head.key_id
    finally:
        again.close()


def test_a_tampered_ledger_keeps_the_lane_out_of_service_with_an_alert(sim_config: Config) -> None:
    sim_config.data_dir.mkdir(parents=True, exist_ok=True)
    with Store.open(sim_config.store_path) as store:
        populate(store, load_device_key(sim_config.device_key_path))
    with raw(sim_config.store_path) as conn:
        rewrite_entry(conn, 5, {**entry(conn, 5), "decision": "OPEN"}, leaf=False)
    kiosk = build_kiosk(sim_config)
    try:
        problem = kiosk.engine.ledger_problem
        assert problem == "audit ledger does not verify: entry 5: content does not match its leaf hash"
        heads = kiosk.store.ledger.latest_head()
        assert heads is not None and heads.size == 16  # no head was signed over the tampered ledger
        outcome = kiosk.engine.run_once(0.1)
        assert outcome is not None and outcome.decision == "OUT_OF_SERVICE"
        assert kiosk.engine.out_of_service_reason == problem
        alerts = [json.loads(e.payload) for e in kiosk.store.outbox.pending(100) if e.type == "alert"]
        assert {"alert": "out_of_service", "transaction_id": None, "detail": problem} in alerts
    finally:
        kiosk.close()


APPENDER = """
import sys
from pathlib import Path
from kiosk.store import FinishedTransaction, Store

with Store.open(Path(sys.argv[1])) as store:
    while True:
        txn = store.transactions.begin(versions={}, training=False)
        store.transactions.finish(FinishedTransaction(id=txn, decision="REFER", reasons=["WATCHLIST_HIT"]))
        store.outbox.add("alert", {"alert": "referral_watchlist_hit", "transaction_id": txn})
        print(store.ledger.size(), flush=True)
"""


def test_kill_9_while_appending_leaves_a_ledger_that_verifies(tmp_path: Path, capsys) -> None:
    db = tmp_path / "kiosk.sqlite3"
    rng = random.Random(12)
    committed = 0
    for _ in range(15):
        child = subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(db)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        wanted = rng.randint(1, 40)
        deadline = time.monotonic() + DEADLINE_S
        seen = 0
        while seen < wanted and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            committed = max(committed, int(line))
            seen += 1
        child.send_signal(signal.SIGKILL)  # mid-append, or between two
        child.wait()
        child.stdout.close()
        assert seen == wanted, "the appender stopped before it was killed"
        assert main(["ledger", "verify", "--db", str(db)]) == 0, capsys.readouterr().err
        summary = capsys.readouterr().out
        with Store.open(db) as store:
            size = store.ledger.size()
            assert size >= committed  # everything reported as committed survived
            # The event, the fact and the entry commit together: an event per entry, none missing.
            assert store.outbox.last_seq() == size
        assert f"ledger intact: {size} entries" in summary
