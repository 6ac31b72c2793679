"""A configuration with real devices serves real travellers: the document reader, fingerprint sensor and
gate IO on their wire-protocol simulators behind ptys, the passport chip on the vpcd virtual reader read
through pcscd. No simulated enrolment: the face reference is the portrait on the chip."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from common.clock import SimulatedClock
from config import Config, ConfigError
from drivers.chip.options import VpcdChipSection
from drivers.chip.pcsc import PcscTransport
from drivers.simulated.lane import SimulatedLane
from kiosk.app import Kiosk, build_kiosk
from kiosk.enrolment import NoEnrolment
from kiosk.headless import DEVICE_CONNECT_TIMEOUT_S, wait_until_connected
from kiosk.privacy import load_fleet_key
from kiosk.simulation.passports import PassportOffice
from kiosk.simulation.population import reference_datasets, traveller_of
from kiosk.simulation.wire import WireRig
from kiosk.store import canonical_sha256
from tests.chip_fixtures import DEADLINE_S, VPCD_PORT, PcscDaemon, chip_on_reader, pcscd, transport, vpcd

__all__ = ["chip_on_reader", "pcscd", "transport", "vpcd"]  # fixtures, imported for pytest
pytestmark = pytest.mark.timeout(180)


def real_config(base_dir: Path) -> Config:
    config = Config(base_dir=base_dir)
    load_fleet_key(config.fleet_key_path, create=True)  # provisioned, as a technician does
    return config.model_copy(
        update={"devices": config.devices.model_copy(update={"chip": VpcdChipSection(vpcd_port=VPCD_PORT)})}
    )


@contextmanager
def real_lane(base_dir: Path) -> Iterator[tuple[Kiosk, WireRig]]:
    lane = SimulatedLane(SimulatedClock())
    with tempfile.TemporaryDirectory(prefix="gerbang-real-") as wires:
        rig = WireRig(lane, Path(wires)).start()
        try:
            config = rig.configure(real_config(base_dir))
            assert not config.simulated
            kiosk = build_kiosk(config, lane=lane, simulated_travellers=False)
            try:
                kiosk.engine.start()
                wait_until_connected(kiosk, DEVICE_CONNECT_TIMEOUT_S)
                yield kiosk, rig
            finally:
                kiosk.close()
        finally:
            rig.stop()


def test_a_real_device_configuration_serves_a_traveller_with_the_chip_portrait(
    tmp_path: Path, vpcd: PcscDaemon, transport: PcscTransport, chip_on_reader
) -> None:
    with real_lane(tmp_path) as (kiosk, rig):
        assert isinstance(kiosk.engine.enrolment, NoEnrolment)
        today = kiosk.clock.now().date()
        traveller, impostor = traveller_of("citizen", 41, today), traveller_of("impostor", 41, today)
        for name, records in reference_datasets([traveller, impostor], kiosk.hasher, today).items():
            kiosk.store.reference_data.apply(name, canonical_sha256(records)[:16], records)
        office = PassportOffice()
        for person, decision, reasons in ((traveller, "OPEN", ()), (impostor, "REFER", ("FACE_MISMATCH",))):
            card = office.issue(person)
            assert card is not None
            simulator = chip_on_reader(card)
            rig.arrive(person)
            try:
                outcome = kiosk.engine.run_once(5.0)
            finally:
                rig.leave()
                simulator.stop()
                # The next passport must not meet this one's ghost (vpcd notices a card left at its poll).
                assert transport.wait_card(False, DEADLINE_S)
            assert outcome is not None and (outcome.decision, outcome.reasons) == (decision, reasons)
            assert "chip_read" in outcome.stage_ms
            assert not kiosk.engine.devices.gate.entry_unlocked()


def test_real_travellers_without_a_chip_reader_are_refused(tmp_path: Path) -> None:
    # The in-process chip slot only ever holds simulated passports: nothing would know a real face.
    with pytest.raises(ConfigError, match="reference portrait from the passport chip"):
        build_kiosk(Config(base_dir=tmp_path), simulated_travellers=False)
