from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config import Config
from hub.signer import keygen, load_private_key
from kiosk.app import Kiosk, build_kiosk
from kiosk.privacy import IdentifierHasher
from kiosk.store import Store
from tests import lfw
from tests.mqtt_broker import MosquittoBroker, site_broker_limits

TODAY = date(2026, 11, 27)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without the LFW dev set, every test that needs it is skipped from here: one place, so the
    summary folds them all into one line with the one reason."""
    if item.get_closest_marker("needs_lfw") and not lfw.available():
        pytest.skip(lfw.SKIP_REASON)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "kiosk.sqlite3") as opened:
        yield opened


@pytest.fixture
def hasher() -> IdentifierHasher:
    return IdentifierHasher(b"k" * 32)


@pytest.fixture
def sim_config(tmp_path: Path) -> Config:
    """Defaults (all simulated) with the data directory in the test's own folder."""
    return Config(base_dir=tmp_path)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto on a free loopback port, for this test only, with the deployed site broker's queue
    and packet-size limits: Mosquitto's default (1,000 queued per client) drops messages for a subscriber
    that falls behind, as a test's own subscriber does on a loaded machine."""
    running = MosquittoBroker(tmp_path, extra=site_broker_limits())
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def keys(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Ed25519PrivateKey, Path]:
    """A hub key pair (private key, public PEM path) of the role the module names in KEY_ROLE."""
    private_path, public_path = keygen(tmp_path / "keys", getattr(request.module, "KEY_ROLE", "command"))
    return load_private_key(private_path), public_path


@pytest.fixture
def kiosk(sim_config: Config) -> Iterator[Kiosk]:
    """The simulated lane, started (doors secured, unfinished transactions aborted)."""
    built = build_kiosk(sim_config)
    built.engine.start()
    yield built
    built.close()
