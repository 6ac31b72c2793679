from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.privacy import IdentifierHasher
from kiosk.store import Store

TODAY = date(2026, 11, 27)


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
