"""The chip reader over the real PC/SC stack: pcscd, the vpcd virtual reader and the simulated chip."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from drivers.chip.card import SimulatedPassport
from drivers.chip.errors import AccessDeniedError, NoCardError, SecureMessagingError
from drivers.chip.pace import PaceInfo
from drivers.chip.pcsc import PcscTransport
from drivers.chip.reader import PcscChipReader
from drivers.chip.simulator import ChipSimulator
from drivers.interfaces import ChipAccessKey, ChipReader, HealthState
from tests.chip_fixtures import VPCD_READER, PcscDaemon, chip_on_reader, pcscd, transport, vpcd, wait_until
from tests.chip_lds import SPECIMEN_KEY, lds_files, write_lds

__all__ = ["chip_on_reader", "pcscd", "transport", "vpcd"]  # fixtures, imported for pytest
pytestmark = pytest.mark.xdist_group("vpcd")

PutChip = Callable[[SimulatedPassport], ChipSimulator]
ALL = ["COM", "DG1", "DG2", "DG14", "DG15", "SOD"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def reader(vpcd: PcscDaemon) -> Iterator[PcscChipReader]:
    opened = PcscChipReader(VPCD_READER, extended_length="off")
    yield opened
    opened.close()


def test_bac_reads_every_file_in_short_chunks(chip_on_reader: PutChip, reader: PcscChipReader) -> None:
    contents = lds_files(dg2_size=20_000)
    chip_on_reader(SimulatedPassport(contents))
    assert isinstance(reader, ChipReader)
    assert reader.health().state is HealthState.OK
    assert reader.wait_for_card(5)

    session = reader.read(SPECIMEN_KEY, ALL)

    assert session.access == "BAC"
    assert dict(session.files) == contents  # DG14 and DG15 absent on this chip: left out
    # 223-byte chunks of a 20 KB DG2 alone take 90 READ BINARYs.
    assert session.apdus > 20_000 // 223
    assert session.bytes_received > sum(map(len, contents.values()))
    assert set(session.file_s) == set(ALL)


def test_extended_length_and_offsets_past_32k(chip_on_reader: PutChip, vpcd: PcscDaemon) -> None:
    contents = lds_files(dg2_size=40_000)
    chip_on_reader(SimulatedPassport(contents))
    reader = PcscChipReader(VPCD_READER, extended_length="auto", extended_read_size=0x1000)
    try:
        session = reader.read(SPECIMEN_KEY, ["DG1", "DG2"])
    finally:
        reader.close()
    assert session.files["DG2"] == contents["DG2"]
    # The simulated chip's ATR announces extended lengths: 4 KiB chunks, the last ones by odd READ BINARY.
    assert session.apdus < 20


@pytest.mark.parametrize(
    ("algorithm", "parameter_id"),
    [("AES", 13), ("AES", 12), ("3DES", 13), ("3DES", 12)],
    ids=["brainpool-aes", "nist-aes", "brainpool-3des", "nist-3des"],
)
def test_pace_read(
    chip_on_reader: PutChip, reader: PcscChipReader, algorithm: str, parameter_id: int
) -> None:
    contents = lds_files(dg2_size=5_000)
    card_access = PaceInfo.of(algorithm, 128, parameter_id).card_access()  # type: ignore[arg-type]
    chip_on_reader(SimulatedPassport({**contents, "CardAccess": card_access}))
    session = reader.read(SPECIMEN_KEY, ["COM", "DG1", "DG2", "SOD"])
    assert session.access == "PACE"
    assert dict(session.files) == contents


@pytest.mark.parametrize("pace", [False, True], ids=["bac", "pace"])
def test_wrong_mrz_is_access_denied(chip_on_reader: PutChip, reader: PcscChipReader, pace: bool) -> None:
    extra = {"CardAccess": PaceInfo.of("AES", 128, 13).card_access()} if pace else {}
    chip_on_reader(SimulatedPassport({**lds_files(dg2_size=100), **extra}))
    wrong = ChipAccessKey(SPECIMEN_KEY.document_number, "740813", SPECIMEN_KEY.date_of_expiry)
    with pytest.raises(AccessDeniedError):
        reader.read(wrong, ["DG1"])
    assert reader.health().state is HealthState.OK  # a wrong MRZ is not a reader fault
    assert reader.read(SPECIMEN_KEY, ["DG1"]).files["DG1"]


def test_card_removed_mid_read(
    chip_on_reader: PutChip, reader: PcscChipReader, transport: PcscTransport
) -> None:
    simulator = chip_on_reader(SimulatedPassport(lds_files(dg2_size=20_000)))
    simulator.remove_after = 30  # pulled away in the middle of DG2
    with pytest.raises(NoCardError):
        reader.read(SPECIMEN_KEY, ALL)
    assert reader.wait_for_removal(10)
    with pytest.raises(NoCardError):
        reader.internal_authenticate(os.urandom(8))

    simulator.insert_card()
    assert reader.wait_for_card(30)
    assert reader.read(SPECIMEN_KEY, ["DG1"]).access == "BAC"


def test_a_bad_response_mac_ends_the_session(chip_on_reader: PutChip, reader: PcscChipReader) -> None:
    card = SimulatedPassport(lds_files(dg2_size=5_000))
    chip_on_reader(card)
    card.corrupt_mac_in = 5  # a READ BINARY answer, well after access control
    with pytest.raises(SecureMessagingError, match="MAC"):
        reader.read(SPECIMEN_KEY, ALL)
    with pytest.raises(NoCardError):  # nothing of that session stays usable
        reader.internal_authenticate(os.urandom(8))
    assert reader.read(SPECIMEN_KEY, ["DG1"]).files["DG1"]  # a fresh session reads again


def test_reader_gone_fails_health_and_comes_back(chip_on_reader: PutChip, vpcd: PcscDaemon) -> None:
    if not vpcd.owned:
        pytest.skip("pcscd belongs to the system here: the test cannot take the reader away")
    reader = PcscChipReader(VPCD_READER, extended_length="off")
    try:
        assert reader.health().state is HealthState.OK
        vpcd.stop()
        health = reader.health()
        assert health.state is HealthState.FAILED and health.reason
        vpcd.start()
        wait_until(lambda: reader.health().state is HealthState.OK, "the reader to come back")
        chip_on_reader(SimulatedPassport(lds_files(dg2_size=100)))
        assert reader.read(SPECIMEN_KEY, ["DG1"]).files["DG1"]
    finally:
        reader.close()
    missing = PcscChipReader("No Such Reader")
    assert missing.health().state is HealthState.FAILED
    missing.close()


def _iso9796_2_recover(public: rsa.RSAPublicKey, signature: bytes, challenge: bytes) -> bool:
    numbers = public.public_numbers()
    size = (public.key_size + 7) // 8
    f = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(size, "big")
    if f[0] != 0x6A or f[-1] != 0xBC:
        return False
    m1, digest = f[1:-21], f[-21:-1]
    return hashlib.sha1(m1 + challenge).digest() == digest


def test_active_authentication_rsa_and_ecdsa(chip_on_reader: PutChip, reader: PcscChipReader) -> None:
    rsa_key = rsa.generate_private_key(65537, 2048)
    chip_on_reader(SimulatedPassport(lds_files(dg2_size=100), aa_key=rsa_key))
    reader.read(SPECIMEN_KEY, ["DG1"])
    challenge = os.urandom(8)
    signature = reader.internal_authenticate(challenge)
    assert len(signature) == 256
    assert _iso9796_2_recover(rsa_key.public_key(), signature, challenge)
    assert not _iso9796_2_recover(rsa_key.public_key(), signature, os.urandom(8))


def test_active_authentication_ecdsa(chip_on_reader: PutChip, reader: PcscChipReader) -> None:
    ec_key = ec.generate_private_key(ec.BrainpoolP256R1())
    chip_on_reader(SimulatedPassport(lds_files(dg2_size=100), aa_key=ec_key))
    reader.read(SPECIMEN_KEY, ["DG1"])
    challenge = os.urandom(8)
    plain = reader.internal_authenticate(challenge)
    assert len(plain) == 64
    der = encode_dss_signature(int.from_bytes(plain[:32], "big"), int.from_bytes(plain[32:], "big"))
    ec_key.public_key().verify(der, challenge, ec.ECDSA(hashes.SHA256()))


def test_simulate_chip_command(tmp_path: Path, reader: PcscChipReader, transport: PcscTransport) -> None:
    contents = lds_files(dg2_size=3_000)
    contents["CardAccess"] = PaceInfo.of("AES", 128, 13).card_access()
    lds = write_lds(tmp_path / "lds", contents)
    key = ec.generate_private_key(ec.SECP256R1())
    (lds / "AA.key.pem").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    process = subprocess.Popen(
        [sys.executable, "-m", "drivers", "simulate", "chip", "--lds", str(lds), "--vpcd-port", "35963"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert reader.wait_for_card(30)
        session = reader.read(SPECIMEN_KEY, ALL)
        assert session.access == "PACE"
        assert dict(session.files) == {k: v for k, v in contents.items() if k != "CardAccess"}
        assert len(reader.internal_authenticate(os.urandom(8))) == 64
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
    assert transport.wait_card(False, 30)
