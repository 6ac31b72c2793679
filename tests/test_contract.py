"""The wire contract package stands alone: both sides import it, it imports neither."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from contract.broker import parse_broker
from contract.bundles import REFERENCE_DATASETS
from kiosk.reference_data import Dataset

ROOT = Path(__file__).resolve().parent.parent


def imported_after(statement: str) -> set[str]:
    """Top-level packages in sys.modules after ``statement``, in a fresh interpreter."""
    code = f"{statement}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_contract_imports_nothing_of_the_kiosk_the_agent_or_the_hub() -> None:
    modules = imported_after(
        "import contract.broker, contract.bundles, contract.commands, contract.schema, contract.signing,"
        " contract.topics, contract.merkle, contract.tree_head; contract.schema.schemas()"
    )
    assert "contract" in modules
    assert not modules & {"kiosk", "edge_agent", "hub", "drivers", "models", "provisioning"}


def test_dataset_names_are_the_kiosks() -> None:
    assert {d.value for d in Dataset} == REFERENCE_DATASETS


def test_broker_urls() -> None:
    assert parse_broker("mqtt://hub") == ("mqtt", "hub", 1883)
    assert parse_broker("mqtts://hub.example:8884") == ("mqtts", "hub.example", 8884)
    for bad in ("http://hub:1883", "mqtt://", "hub:1883"):
        try:
            parse_broker(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")
