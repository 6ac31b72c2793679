"""The ``[devices.chip]`` sections the chip package registers, and the reader the factory builds from them."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from drivers.chip.factory import build
from drivers.chip.options import PcscChipSection, SimulatedChipSection
from drivers.registry import backends


def test_registered_backends_and_validation() -> None:
    registered = backends("chip")
    assert registered == {"pcsc": PcscChipSection, "simulated": SimulatedChipSection}
    section = TypeAdapter(PcscChipSection).validate_python(
        {"backend": "pcsc", "reader": "ACS ACR1252", "options": {"extended_length": "on"}}
    )
    assert section.options.extended_length == "on"
    with pytest.raises(ValidationError):
        PcscChipSection(options={"extended_length": "yes"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        PcscChipSection(options={"reconnect_initial_s": 9.0, "reconnect_max_s": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SimulatedChipSection(vpcd_port=1234)  # type: ignore[arg-type]


def test_factory_builds_readers_without_touching_pcscd() -> None:
    reader = build(PcscChipSection(reader="HID Global OMNIKEY 5022"))
    assert reader.transport.wanted == "HID Global OMNIKEY 5022"
    assert reader.extended_length == "auto"
    simulated = build(SimulatedChipSection(vpcd_port=35964))
    assert simulated.transport.wanted == "Virtual PCD 00 01"
    reader.close()
    simulated.close()
