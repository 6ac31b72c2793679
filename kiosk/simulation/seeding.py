"""A simulation's reference data, and the rule that keeps simulations off production databases.

A simulated population brings its own watchlist, e-visas and policy; written over a database that holds
the hub's, it would replace the real watchlist with a made-up one. So a simulation refuses a database
the edge agent has applied a hub bundle to (``kiosk.reference_data.SOURCE_META``), naming it: give the
simulation a database of its own (``--db``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config import ConfigError
from kiosk.reference_data import HUB_SOURCE, SOURCE_META, Dataset
from kiosk.store import Store, canonical_sha256


def refuse_production(store: Store, path: Path) -> None:
    """ConfigError when ``store`` (at ``path``) holds reference data synced from the hub."""
    if store.meta.get(SOURCE_META) == HUB_SOURCE:
        raise ConfigError(
            f"database {path} holds reference data synced from the hub (watchlist, e-visas, policy): a "
            "simulation never runs on a production database; give it a database of its own with --db"
        )


def seed_reference_data(store: Store, datasets: Mapping[Dataset, Any]) -> None:
    for name, records in datasets.items():
        # A version names its content: the same population on another day is another version.
        store.reference_data.apply(name, f"sim-{canonical_sha256(records)[:16]}", records)
