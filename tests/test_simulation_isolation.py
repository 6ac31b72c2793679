"""Simulation never touches a production database, and the agent compares a retained bundle with the
dataset actually in force (not only with its own note of what it applied)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config import Config, ConfigError
from contract.signing import load_public_key
from edge_agent.sync import SyncHandler
from hub.bundles import encode, publish_bundle
from kiosk.app import served_lane
from kiosk.cli import main as kiosk_main
from kiosk.reference_data import Dataset
from kiosk.store import Store
from tests.mqtt_broker import MosquittoBroker
from tests.test_edge_agent import wait_for
from tests.test_sync import KEY_ID, SITE, TOPICS, WATCHLIST, outbox, running_agent, sign_bundle

KEY_ROLE = "sync"  # the conftest `keys` fixture makes a bundle-signing pair
COLUMNS = ("record_id", "subject_hash", "match_on", "category")


def _watchlist(store: Store) -> tuple[str | None, list[dict]]:
    version, rows = store.reference_data.rows(Dataset.WATCHLIST, COLUMNS)
    return version, sorted(rows, key=lambda r: r["subject_hash"])


def _hub_synced(tmp_path: Path, private: Ed25519PrivateKey, public: Path) -> Config:
    """A kiosk data directory whose database holds the hub's watchlist, applied by the agent."""
    config = Config(base_dir=tmp_path)
    config.data_dir.mkdir(parents=True)
    with Store.open(config.store_path) as store:
        handler = SyncHandler(store, TOPICS, load_public_key(public), fleet_key_id=lambda: KEY_ID)
        bundle = sign_bundle(private, "watchlist", "w1", WATCHLIST, site=SITE)
        assert handler.process(TOPICS.sync("watchlist"), encode(bundle)).status == "applied"
    return config


def test_a_headless_simulation_refuses_a_database_with_the_hubs_data(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = _hub_synced(tmp_path, *keys)
    with Store.open(config.store_path) as store:
        before = _watchlist(store)
        events = store.outbox.last_seq()
    args = ["run", "--headless", "--simulate", "--travellers", "5", "--db", str(config.store_path)]
    toml = tmp_path / "kiosk.toml"
    toml.write_text("", encoding="utf-8")
    assert kiosk_main([*args, "--config", str(toml)]) == 2
    err = capsys.readouterr().err
    assert str(config.store_path) in err and "production database" in err
    with Store.open(config.store_path) as store:
        assert _watchlist(store) == before == ("w1", sorted(WATCHLIST, key=lambda r: r["subject_hash"]))
        assert store.outbox.last_seq() == events  # not a single write
    # The touchscreen's simulation (every device simulated, a simulated world) refuses it too.
    with pytest.raises(ConfigError, match="production database"), served_lane(config, db=config.store_path):
        pass
    # A database of its own runs.
    assert kiosk_main([*args[:-1], str(tmp_path / "sim.sqlite3"), "--config", str(toml)]) == 0


@pytest.mark.timeout(90)
def test_the_agent_restores_the_hubs_dataset_when_what_is_in_force_changed(
    tmp_path: Path, broker: MosquittoBroker, keys: tuple[Ed25519PrivateKey, Path]
) -> None:
    private, public = keys
    db = tmp_path / "kiosk.sqlite3"
    publish_bundle(
        "127.0.0.1", broker.port, SITE, sign_bundle(private, "watchlist", "w1", WATCHLIST, site=SITE)
    )
    with running_agent(db, broker, public) as agent:
        wait_for(lambda: agent.handler.stats.applied == 1, 20, "retained bundle applied")
        in_force = _watchlist(agent.store)
    # Behind the agent's back (a simulation before this was refused, a restored backup, a hand edit):
    fake = [
        {"record_id": "sim-1", "subject_hash": "cd" * 32, "match_on": "document", "category": "watchlist"}
    ]
    with Store.open(db) as store:
        store.reference_data.apply(Dataset.WATCHLIST, "sim-0123456789abcdef", fake)
    with running_agent(db, broker, public) as agent:
        # The retained bundle arrives again on connect; its bytes are known, but it is not what is in force.
        wait_for(lambda: agent.handler.stats.applied == 1, 20, "retained bundle applied again")
        assert agent.handler.stats.unchanged == 0
        assert _watchlist(agent.store) == in_force
    with running_agent(db, broker, public) as agent:
        wait_for(lambda: agent.handler.stats.unchanged == 1, 20, "in force: a silent no-op again")
    assert [a["version"] for a in outbox(db, "audit") if a["audit"] == "dataset_applied"] == ["w1", "w1"]
    assert outbox(db, "alert") == []
