"""The import rules of .importlinter hold: drivers/ stands alone, config/ and common/ sit below the kiosk.

The subprocess checks need nothing but Python: every module is imported in a fresh interpreter, so
a kiosk module pulled in through any chain of imports is seen, and named with the first module
whose import loaded it.
"""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import drivers

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import importlib, json, sys
forbidden = set(json.loads(sys.argv[1]))
loaded = {}
for name in sys.argv[2:]:
    before = set(sys.modules)
    importlib.import_module(name)
    new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in forbidden)
    if new:
        loaded[name] = new
print(json.dumps(loaded))
"""


def _loaded_by(modules: list[str], forbidden: set[str]) -> dict[str, list[str]]:
    """Which forbidden packages importing ``modules`` (in order, in one fresh interpreter) loaded."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(forbidden)), *modules],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_drivers_module_loads_the_kiosk() -> None:
    modules = ["drivers"] + [
        info.name
        for info in pkgutil.walk_packages(drivers.__path__, "drivers.")
        if not info.name.endswith("__main__")  # the CLI dispatcher: it runs, it is not a library
    ]
    assert {"drivers.simulated.lane", "drivers.gate.modbus_io", "drivers.camera.factory"} <= set(modules)
    assert _loaded_by(modules, {"kiosk", "config", "edge_agent", "hub", "models"}) == {}


def test_loading_the_configuration_loads_no_kiosk_and_no_device_stack() -> None:
    forbidden = {"kiosk", "edge_agent", "hub", "models", "cv2", "pymodbus", "gpiozero", "smartcard"}
    assert _loaded_by(["config"], forbidden) == {}


def _lint_imports() -> str:
    # Fail, not skip: import-linter is in the test extra, so its absence is a set-up defect.
    beside = Path(sys.executable).parent / "lint-imports"
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert found is not None, "lint-imports not found: install the test extra"
    return found


def test_import_linter_contracts_are_kept() -> None:
    result = subprocess.run(
        [_lint_imports(), "--config", str(ROOT / ".importlinter")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
