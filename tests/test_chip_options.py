"""The ``[devices.chip]`` sections the chip package registers, and the reader the factory builds from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from drivers.chip.factory import build
from drivers.chip.inprocess import InProcessChipReader
from drivers.chip.options import PcscChipSection, SimulatedChipSection, VpcdChipSection
from drivers.registry import backends

REPO = Path(__file__).resolve().parents[1]


def test_registered_backends_and_validation() -> None:
    registered = backends("chip")
    assert registered == {
        "pcsc": PcscChipSection,
        "simulated": SimulatedChipSection,
        "vpcd": VpcdChipSection,
    }
    section = TypeAdapter(PcscChipSection).validate_python(
        {"backend": "pcsc", "reader": "ACS ACR1252", "options": {"extended_length": "on"}}
    )
    assert section.options.extended_length == "on"
    with pytest.raises(ValidationError):
        PcscChipSection(options={"extended_length": "yes"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        PcscChipSection(options={"reconnect_initial_s": 9.0, "reconnect_max_s": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        VpcdChipSection(vpcd_port=1234)  # type: ignore[arg-type]


def test_factory_builds_readers_without_touching_pcscd() -> None:
    reader = build(PcscChipSection(reader="HID Global OMNIKEY 5022"))
    assert reader.transport.wanted == "HID Global OMNIKEY 5022"
    assert reader.extended_length == "auto"
    vpcd = build(VpcdChipSection(vpcd_port=35964))
    assert vpcd.transport.wanted == "Virtual PCD 00 01"
    simulated = build(SimulatedChipSection())
    assert isinstance(simulated, InProcessChipReader)
    assert simulated.health().usable and not simulated.wait_for_card(0)
    for opened in (reader, vpcd, simulated):
        opened.close()


def test_pcsc_config_loads_without_pyscard_and_is_refused_when_opened(tmp_path: Path) -> None:
    """A kiosk without pyscard still loads (and checks) a configuration naming a PC/SC reader; only
    opening the reader says what is missing."""
    config = tmp_path / "kiosk.toml"
    config.write_text('[devices.chip]\nbackend = "pcsc"\nreader = "ACS ACR1252"\n')
    script = f"""
import sys
sys.modules["smartcard"] = None  # as if pyscard were not installed
from pathlib import Path
from config.load import load_config
from drivers.chip.factory import build
config = load_config(Path({str(config)!r}))
assert config.devices.chip.reader == "ACS ACR1252"
try:
    build(config.devices.chip)
except ValueError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "pyscard is not installed" in done.stdout
