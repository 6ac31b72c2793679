"""The kiosk wheel carries no hub code, and nothing a kiosk runs imports the hub.

The hub (key generation, signing, the consumer) is its own distribution, ``hub/pyproject.toml``; the
wire contract both sides share is ``contract/``, inside the kiosk wheel. The wheel is built from a
copy of the sources (so the check cannot be fooled by what the working tree has lying around) and
"installed" by unpacking it - a pure-Python wheel is exactly its files - next to nothing else of ours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KIOSK_PACKAGES = ("contract", "drivers", "edge_agent", "kiosk", "models", "provisioning")

# Run in a fresh interpreter with only the unpacked wheel on the path: drops any editable-install finder
# (it would quietly serve a module the wheel lacks from another checkout), refuses every `hub` import,
# then imports every module of the wheel (command-line entry points excepted: importing runs them).
IMPORT_CHECK = """
import importlib, importlib.abc, pkgutil, sys
site = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()

class NoHub(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hub" or name.startswith("hub."):
            raise ImportError(f"kiosk code imported {name}")
        return None

sys.meta_path.insert(0, NoHub())
count = 0
for package in sys.argv[2:]:
    root = importlib.import_module(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    for name in names:
        if name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            module = importlib.import_module(name)
        except BaseException as exc:
            # stdout, not stderr: Kivy takes stderr over once one of the UI modules has loaded it.
            print("FAILED", name, repr(exc))
            sys.exit(1)
        assert module.__file__.startswith(site), (name, module.__file__)
        count += 1
assert not any(m == "hub" or m.startswith("hub.") for m in sys.modules)
print(count)
"""


@pytest.fixture(scope="module")
def kiosk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    # hub/ is copied too: the main project's package search must leave it out by itself.
    for name in (*KIOSK_PACKAGES, "hub"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--disable-pip-version-check", "-q", "-w", str(work / "out"), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # Needs setuptools>=68 and wheel in this environment (the `test` extra brings them).
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (work / "out").glob("gerbang-*.whl")
    return wheel


def test_kiosk_wheel_has_no_hub_and_ships_the_contract(kiosk_wheel: Path) -> None:
    names = zipfile.ZipFile(kiosk_wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert tops == set(KIOSK_PACKAGES)
    assert not [name for name in names if name.startswith("hub/") or "/hub/" in name]
    schemas = {Path(name).name for name in names if name.startswith("contract/schemas/")}
    assert {"ack.schema.json", "command.schema.json", "state.schema.json"} <= schemas


@pytest.mark.timeout(300)
def test_kiosk_packages_import_without_the_hub(kiosk_wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(kiosk_wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1", KIVY_NO_FILELOG="1")
    env.setdefault("SDL_VIDEODRIVER", "offscreen")  # the UI modules open Kivy's window on import
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, str(site), *KIOSK_PACKAGES],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert int(done.stdout.split()[-1]) > 100  # every module, not an empty walk


def test_hub_is_its_own_distribution_that_depends_on_the_kiosk_package() -> None:
    import tomllib

    hub = tomllib.loads((ROOT / "hub" / "pyproject.toml").read_text(encoding="utf-8"))
    main = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert hub["project"]["name"] != main["project"]["name"]
    assert main["project"]["name"] in hub["project"]["dependencies"]
    assert hub["tool"]["setuptools"]["package-dir"] == {"hub": "."}
    assert "hub*" in main["tool"]["setuptools"]["packages"]["find"]["exclude"]
