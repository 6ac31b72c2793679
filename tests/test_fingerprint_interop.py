"""A third-party client, pyfingerprint, against the simulator over a pty: the simulator speaks the
protocol real modules speak, not merely the dialect of our own driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyfingerprint import pyfingerprint

from drivers.fingerprint.client import R30xClient
from drivers.fingerprint.simulator import R30xSimulator, template_for
from drivers.pty_endpoint import PtyEndpoint
from drivers.serial_link import SerialLink

# Everything here talks over a pty: a lost answer must fail a test, not hang the suite.
pytestmark = pytest.mark.timeout(30)

PASSWORD = 0x0BADC0DE


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[R30xSimulator]:
    endpoint = PtyEndpoint(tmp_path / "fingerprint")
    simulator = R30xSimulator(endpoint, password=PASSWORD).start()
    yield simulator
    simulator.stop()
    endpoint.close()


def sensor(simulator: R30xSimulator, password: int = PASSWORD) -> pyfingerprint.PyFingerprint:
    return pyfingerprint.PyFingerprint(simulator.endpoint.path, 57600, 0xFFFFFFFF, password)


def test_pyfingerprint_enrolls_stores_searches_and_counts(simulator):
    f = sensor(simulator)
    assert f.verifyPassword() is True
    assert f.getStorageCapacity() == simulator.capacity
    assert f.getTemplateCount() == 0
    assert f.readImage() is False  # no finger yet

    simulator.place_finger(21)
    assert f.readImage() is True
    assert f.convertImage(0x01) is True
    assert f.searchTemplate() == (-1, -1)  # not enrolled yet
    assert f.readImage() is True
    assert f.convertImage(0x02) is True
    assert f.compareCharacteristics() > 100
    assert f.createTemplate() is True
    slot = f.storeTemplate()  # finds a free slot through ReadIndexTable
    assert slot == 0
    assert f.getTemplateCount() == 1 == simulator.template_count
    assert f.getTemplateIndex(0)[:2] == [True, False]

    assert f.readImage() is True
    assert f.convertImage(0x01) is True
    found, score = f.searchTemplate()
    assert found == slot and score > 100

    simulator.place_finger(22)
    assert f.readImage() is True
    assert f.convertImage(0x01) is True
    assert f.searchTemplate() == (-1, -1)
    assert f.storeTemplate() == 1  # the next free slot
    assert f.getTemplateCount() == 2


def test_pyfingerprint_moves_characteristics_both_ways(simulator):
    f = sensor(simulator)
    assert f.verifyPassword()
    reference = list(template_for(30))
    assert f.uploadCharacteristics(0x02, reference) is True  # DownChar, then UpChar to compare
    simulator.place_finger(30)
    assert f.readImage() and f.convertImage(0x01)
    assert f.compareCharacteristics() > 200
    assert len(f.downloadCharacteristics(0x01)) == 512


def test_pyfingerprint_with_the_wrong_password_is_refused(simulator):
    f = sensor(simulator, password=0)
    assert f.verifyPassword() is False
    with pytest.raises(Exception, match="0x21"):  # "must verify password first"
        f.getTemplateCount()


def test_our_client_reads_what_pyfingerprint_enrolled(simulator):
    f = sensor(simulator)
    assert f.verifyPassword()
    simulator.place_finger(40)
    for buffer in (0x01, 0x02):
        assert f.readImage() and f.convertImage(buffer)
    assert f.createTemplate()
    slot = f.storeTemplate(17)
    del f  # pyfingerprint closes its port when collected

    client = R30xClient(SerialLink("fingerprint", simulator.endpoint.path, timeout_s=0.05), password=PASSWORD)
    try:
        assert client.template_count() == 1
        assert client.read_index_table(0) == {slot}
        assert client.gen_img()
        client.img2tz(1)
        hit = client.search(1, 0, simulator.capacity)
        assert hit is not None and hit.slot == slot
    finally:
        client.close()
