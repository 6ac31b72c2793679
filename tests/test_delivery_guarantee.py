"""The end-to-end guarantee with real processes: kiosk -> outbox -> agent -> mosquitto -> ``hub consume``.

A PUBACK means the broker has the event for now, not that it is stored: mosquitto restarted by SIGTERM
or killed by SIGKILL loses what it acknowledged but had not yet handed to the hub (without persistence,
the hub's session with it). The hub's ledger, gap detection and signed ``resend`` are what make every
event arrive exactly once, and the hub's signed watermark is what lets the kiosk forget an event.
The hub consumer is itself killed mid-run and restarted: it must continue from its database.

``GERBANG_DELIVERY_RUNS=10`` repeats the whole scenario (the soak); the default suite runs it once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.ack import hub_ack_seq
from hub.signer import PRIVATE_NAME
from kiosk.store import Store
from tests.mqtt_broker import MosquittoBroker
from tests.test_edge_agent import wait_for
from tests.test_fleet_faults import (
    ROOT,
    TOPICS,
    outbox_ids,
    spawn_agent,
    spawn_paced_kiosk,
    stop_agent,
    transactions_written,
)

RUNS = int(os.environ.get("GERBANG_DELIVERY_RUNS", "1"))
TRAVELLERS = 150
KEY = f"{TOPICS.site}/{TOPICS.kiosk}"


def spawn_hub(broker: MosquittoBroker, ledger: Path, private_key: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "hub", "consume", "--broker", broker.url, "--db", str(ledger)),
                *("--command-key", str(private_key), "--recover-after", "1", "--retry", "3"),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=out,
        )


def report(ledger: Path) -> dict[str, Any]:
    if not ledger.exists():
        return {}
    done = subprocess.run(
        [sys.executable, "-m", "hub", "report", "--db", str(ledger)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=True,
    )
    return json.loads(done.stdout)


def ledger_ids(ledger: Path) -> list[str]:
    with sqlite3.connect(ledger, timeout=10) as conn:
        return [str(row[0]) for row in conn.execute("SELECT event_id FROM events")]


def resends_accepted(db: Path) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute("SELECT payload FROM outbox WHERE type = 'audit'").fetchall()
    return sum(1 for (payload,) in rows if json.loads(payload).get("name") == "resend")


def settled(ledger: Path, store: Store) -> bool:
    last = store.outbox.last_seq()
    entry = report(ledger).get(KEY, {})
    return (
        entry == {"unique_events": last, "last_contiguous_seq": last, "gaps": []}
        and store.outbox.backlog() == 0
        and hub_ack_seq(store) == last
    )


@pytest.mark.soak
@pytest.mark.timeout(600)
@pytest.mark.parametrize("run", range(RUNS))
def test_broker_sigterm_and_sigkill_and_a_hub_restart_end_with_every_event_exactly_once(
    tmp_path: Path, broker: MosquittoBroker, keys: tuple[Ed25519PrivateKey, Path], run: int
) -> None:
    _, public_path = keys
    private_path = public_path.parent / PRIVATE_NAME
    db, ledger, hub_log = tmp_path / "kiosk.sqlite3", tmp_path / "hub.sqlite3", tmp_path / "hub.log"
    Store.open(db).close()  # made once, so kiosk and agent starting together do not both migrate it
    hub = spawn_hub(broker, ledger, private_path, hub_log)
    agent = spawn_agent(db, broker, public_path)
    kiosk, pacer = spawn_paced_kiosk(db, TRAVELLERS, 10 + run, tmp_path / "kiosk.log")
    faults: list[str] = []
    try:
        with Store.open(db) as store:
            for threshold, fault in ((30, "broker SIGTERM"), (70, "hub SIGKILL"), (110, "broker SIGKILL")):
                wait_for(lambda t=threshold: transactions_written(db) >= t, 120, f"{threshold} transactions")
                assert kiosk.poll() is None, "the run ended before the fault"
                faults.append(f"{fault} at {transactions_written(db)}")
                if fault == "broker SIGTERM":
                    broker.stop()
                    broker.start()
                elif fault == "broker SIGKILL":
                    broker.kill()
                    broker.start()
                else:
                    hub.kill()
                    hub.wait(10)
                    hub = spawn_hub(broker, ledger, private_path, hub_log)
            summary_out, _ = kiosk.communicate(timeout=300)
            assert kiosk.returncode == 0, (tmp_path / "kiosk.log").read_text(errors="replace")[-3000:]
            assert json.loads(summary_out)["travellers"] == TRAVELLERS

            wait_for(
                lambda: settled(ledger, store), 180, f"hub holds every event exactly once: {report(ledger)}"
            )
            ids = ledger_ids(ledger)
            assert len(ids) == len(set(ids))
            assert set(ids) == set(outbox_ids(db))
            assert hub.poll() is None, hub_log.read_text(errors="replace")[-3000:]
            print(
                f"\ndelivery run {run}: {store.outbox.last_seq()} events, faults {faults}, "
                f"{resends_accepted(db)} resend commands accepted; report {report(ledger)[KEY]}"
            )
    finally:
        pacer.close()
        if kiosk.poll() is None:
            kiosk.kill()
            kiosk.wait(10)
        if hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
        hub_code = hub.wait(15)
        agent_code = stop_agent(agent)
    assert (hub_code, agent_code) == (0, 0), hub_log.read_text(errors="replace")[-3000:]
