"""Retention and erasure: transactions, sealed referrals and hub requests go once the hub has had their
events for the retention period, each purge audited; ``python -m kiosk erase`` wipes a decommissioned
kiosk's data and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from pydantic import ValidationError

from config import Config
from contract import schema
from contract.topics import Topics
from edge_agent.agent import purge_expired
from edge_agent.publisher import event_message
from kiosk.app import build_kiosk
from kiosk.erase import run as erase
from kiosk.remote import HubDesk
from kiosk.store import FinishedTransaction, OutboxEvent, Request, Store

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
COMMAND_ID = "0190f5b4-0000-7000-8000-000000000001"
TOPICS = Topics("soetta-t3", "gate-07")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def finished(store: Store, decision: str = "OPEN") -> tuple[str, OutboxEvent]:
    txn = store.transactions.begin(versions={"kiosk": "1"}, training=False)
    return txn, store.transactions.finish(FinishedTransaction(id=txn, decision=decision, reasons=["X"]))


class Populated(NamedTuple):
    a: str
    b: str
    acked: int
    event_a: OutboxEvent


def populate(store: Store) -> Populated:
    """Transaction A (referred, with sealed details) and a hub request, delivered; transaction B not."""
    txn_a, event_a = finished(store, "REFER")
    store.referrals.keep("0190f5b4-0000-7000-8000-00000000000a", txn_a, b"sealed bytes")
    store.requests.post(Request(COMMAND_ID, "set_mode", {"mode": "maintenance"}))
    HubDesk(store).done(Request(COMMAND_ID, "set_mode", {"mode": "maintenance"}), "done", training=False)
    executed = store.outbox.pending(10, after_seq=event_a.seq)[-1]
    txn_b, _ = finished(store)
    store.outbox.mark_delivered([event_a.seq, executed.seq])
    return Populated(txn_a, txn_b, store.outbox.last_seq(), event_a)


def audits(store: Store) -> list[dict[str, object]]:
    events = store.outbox.pending(100)
    return [json.loads(e.payload) for e in events if json.loads(e.payload).get("audit") == "retention_purged"]


def test_purge_waits_for_the_hub_and_the_period_then_audits(tmp_path: Path) -> None:
    clock = Clock(T0)
    with Store.open(tmp_path / "kiosk.sqlite3", now=clock) as store:
        made = populate(store)
        purge: Callable[[int, int], dict[str, int]] = lambda acked, days: store.retention.purge(  # noqa: E731
            acked_through=acked, now=T0 + timedelta(days=days), retention_days=30
        )
        # Within the period, or delivered but not yet stored by the hub (watermark below): nothing goes.
        assert purge(made.acked, 29) == {"referrals": 0, "transactions": 0, "requests": 0}
        assert purge(made.event_a.seq - 1, 31)["transactions"] == 0
        assert audits(store) == []

        assert purge(made.acked, 31) == {"referrals": 1, "transactions": 1, "requests": 1}
        remaining = {t["id"] for t in store.transactions.recent(100)}
        assert remaining == {made.b}, "the undelivered transaction must stay"
        assert store.referrals.of_transaction(made.a) == []
        (audit,) = audits(store)
        assert audit == {
            "audit": "retention_purged",
            "retention_days": 30,
            "transactions": 1,
            "referrals": 1,
            "requests": 1,
        }
        # The audit event is a valid events/audit message (it becomes a ledger entry at the hub).
        event = store.outbox.pending(100)[-1]
        schema.validate(TOPICS.event("audit"), event_message(event))
        # A second run finds nothing and audits nothing.
        assert purge(made.acked, 400) == {"referrals": 0, "transactions": 0, "requests": 0}
        assert len(audits(store)) == 1


def test_compacted_events_hold_nothing_and_undelivered_hold_forever(tmp_path: Path) -> None:
    clock = Clock(T0)
    with Store.open(tmp_path / "kiosk.sqlite3", now=clock) as store:
        made = populate(store)
        assert store.outbox.compact(acked_through=made.acked, delivered_before=T0 + timedelta(days=1)) == 2
        counts = store.retention.purge(
            acked_through=made.acked,
            now=T0 + timedelta(days=3650),
            retention_days=30,
        )
        assert counts == {"referrals": 1, "transactions": 1, "requests": 1}
        assert {t["id"] for t in store.transactions.recent(100)} == {made.b}


def test_the_agent_purges_beside_compaction(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.sqlite3"
    with Store.open(path, now=Clock(datetime.now(UTC) - timedelta(days=40))) as old:
        made = populate(old)
        old.meta.set("hub_ack_seq", str(made.acked))
    with Store.open(path) as store:
        assert purge_expired(store, 30) == []
        assert {t["id"] for t in store.transactions.recent(100)} == {made.b}
        assert audits(store)[0]["transactions"] == 1


@pytest.mark.parametrize("days", [0, 366, 3650])
def test_retention_is_bounded(days: int) -> None:
    with pytest.raises(ValidationError, match="retention_days"):
        Config(privacy={"retention_days": days})
    assert Config().privacy.retention_days == 30


# ------------------------------------------------------------------------------------------- erase
def populated_kiosk(tmp_path: Path) -> tuple[Config, Path]:
    data = tmp_path / "data"
    toml = tmp_path / "kiosk.toml"
    toml.write_text(f'[kiosk]\ndata_dir = "{data}"\n', encoding="utf-8")
    config = Config(base_dir=tmp_path, kiosk={"data_dir": data})
    kiosk = build_kiosk(config)
    finished(kiosk.store, "REFER")
    kiosk.close()
    (data / "kivy" / "logs").mkdir(parents=True)
    (data / "kivy" / "logs" / "kivy_26-01-10.txt").write_text("log\n", encoding="utf-8")
    (data / "hub-config.json").write_text("{}", encoding="utf-8")
    (data / "chip-trust").mkdir()
    (data / "chip-trust" / "csca.pem").write_text("cert", encoding="utf-8")
    (data / "models").mkdir()
    (data / "models" / "face.onnx").write_bytes(b"model")
    return config, toml


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", "erase", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_erase_needs_confirmation_then_removes_data_and_keeps_software(tmp_path: Path) -> None:
    config, toml = populated_kiosk(tmp_path)
    before = sorted(p.name for p in config.data_dir.iterdir())
    assert {"gerbang.sqlite3", "keys", "kivy", "models"} <= set(before)

    refused = run_cli("--config", str(toml))
    assert refused.returncode == 1 and "not confirmed" in refused.stderr
    assert sorted(p.name for p in config.data_dir.iterdir()) == before

    done = run_cli("--config", str(toml), "--yes")
    assert done.returncode == 0, done.stderr
    assert f"removed {config.store_path}" in done.stdout
    assert f"removed {config.fleet_key_path.parent}" in done.stdout
    assert [p.name for p in config.data_dir.iterdir()] == ["models"]
    assert (config.data_dir / "models" / "face.onnx").read_bytes() == b"model"
    assert (ROOT / "kiosk" / "__init__.py").exists()


def test_erase_asks_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = populated_kiosk(tmp_path)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert erase(config, yes=False, ask=lambda _prompt: "no") == 1
    assert config.store_path.exists()
    assert erase(config, yes=False, ask=lambda _prompt: "ERASE") == 0
    assert not config.store_path.exists() and not config.data_key_path.exists()


def test_erase_refuses_a_data_directory_holding_software(tmp_path: Path) -> None:
    toml = tmp_path / "kiosk.toml"
    toml.write_text(f'[kiosk]\ndata_dir = "{ROOT}"\n', encoding="utf-8")
    done = run_cli("--config", str(toml), "--yes")
    assert done.returncode == 2 and "holds software" in done.stderr
    assert (ROOT / "pyproject.toml").exists()
