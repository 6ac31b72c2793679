"""`python -m kiosk chip read` end to end over the real PC/SC stack (pcscd, vpcd, the simulated chip),
and `read_document` over the in-process slot and over vpcd against the same passports."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from drivers.chip.card import SimulatedPassport
from drivers.chip.inprocess import InProcessChipReader
from drivers.chip.lds import face
from drivers.chip.reader import PcscChipReader
from drivers.chip.simulator import ChipSimulator, load_lds
from kiosk.chip.issue import issue
from kiosk.chip.reading import read_document
from kiosk.chip.trust import TrustStore
from kiosk.documents.mrz import parse_mrz
from tests.chip_fixtures import VPCD_READER, PcscDaemon, chip_on_reader, pcscd, transport, vpcd
from tests.chip_material import TD3, encode, portrait

__all__ = ["chip_on_reader", "pcscd", "transport", "vpcd"]  # fixtures, imported for pytest
pytestmark = pytest.mark.xdist_group("vpcd")

PutChip = Callable[[SimulatedPassport], ChipSimulator]
REPO = Path(__file__).resolve().parents[1]
OTHER_TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204169ZE184226B<<<<<10"]


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test passports: JPEG with PACE and RSA AA; JPEG 2000, BAC only, EC AA; two CAs."""
    root = tmp_path_factory.mktemp("passports")
    mrz = root / "mrz.txt"
    mrz.write_text("\n".join(TD3) + "\n")
    pixels = portrait()
    (root / "face.jpg").write_bytes(encode(pixels, "jpeg"))
    (root / "face.jp2").write_bytes(encode(pixels, "jpeg2000"))
    issue(mrz.read_text(), root / "face.jpg", root / "jpeg", root / "ca", aa="rsa", pace=True)
    issue(mrz.read_text(), root / "face.jp2", root / "jp2", root / "ca", jpeg2000=True, aa="ec")
    issue(mrz.read_text(), root / "face.jpg", root / "other-ca-passport", root / "other-ca")
    (root / "wrong-mrz.txt").write_text("\n".join(OTHER_TD3) + "\n")
    return root


def _load(folder: Path) -> SimulatedPassport:
    contents, key = load_lds(folder)
    return SimulatedPassport(contents, aa_key=key)


def _read(issued: Path, *extra: str, mrz: str = "mrz.txt") -> tuple[int, dict[str, Any] | None, str]:
    command = ["chip", "read", "--mrz-file", str(issued / mrz), "--reader", VPCD_READER, *extra]
    done = subprocess.run(
        [sys.executable, "-m", "kiosk", *command], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    out = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, out, done.stderr


def _dg2_image(folder: Path) -> bytes:
    return face.parse_dg2((folder / "DG2.bin").read_bytes())[0].data


@pytest.mark.parametrize(
    ("passport", "access", "fmt"), [("jpeg", "PACE", "jpeg"), ("jp2", "BAC", "jpeg2000")], ids=["pace", "bac"]
)
def test_authentic_passport(
    issued: Path, chip_on_reader: PutChip, tmp_path: Path, passport: str, access: str, fmt: str
) -> None:
    chip_on_reader(_load(issued / passport))
    code, out, stderr = _read(
        issued, "--trust", str(issued / "ca"), "--portrait-out", str(tmp_path / "portrait")
    )
    assert code == 0, stderr
    assert out is not None
    assert out["access"] == access
    assert {"COM", "DG1", "DG2", "DG15", "SOD"} <= set(out["files"])
    assert out["dg1"]["document_number"] == "L898902C3"
    assert out["dg1"]["surname"] == "ERIKSSON" and out["dg1"]["birth_date"] == "1974-08-12"
    assert out["mrz_match"] is True
    passive = out["passive_authentication"]
    assert passive["valid"] is True and passive["errors"] == []
    assert "Document Signer" in passive["signer"] and "CSCA" in passive["csca"]
    assert out["active_authentication"] == {"performed": True, "valid": True}
    image = _dg2_image(issued / passport)
    assert out["portrait"]["format"] == fmt
    assert (out["portrait"]["width"], out["portrait"]["height"]) == (240, 320)
    assert out["portrait"]["sha256"] == hashlib.sha256(image).hexdigest()
    assert (tmp_path / "portrait").read_bytes() == image


def test_tampered_dg2_is_a_hash_mismatch(issued: Path, chip_on_reader: PutChip) -> None:
    contents, key = load_lds(issued / "jpeg")
    dg2 = bytearray(contents["DG2"])
    dg2[len(dg2) // 2] ^= 0x01  # inside the image data: still parses, no longer what was signed
    chip_on_reader(SimulatedPassport({**contents, "DG2": bytes(dg2)}, aa_key=key))
    code, out, stderr = _read(issued, "--trust", str(issued / "ca"))
    assert code == 1
    assert out is not None and out["passive_authentication"]["valid"] is False
    assert "DG_HASH_MISMATCH" in out["passive_authentication"]["errors"]
    assert "DG_HASH_MISMATCH" in stderr


def test_unknown_csca(issued: Path, chip_on_reader: PutChip) -> None:
    chip_on_reader(_load(issued / "other-ca-passport"))
    code, out, _ = _read(issued, "--trust", str(issued / "ca"))
    assert code == 1
    assert out is not None and out["passive_authentication"]["errors"] == ["UNKNOWN_CSCA"]
    assert out["active_authentication"] == {"performed": False, "valid": None}


def test_aa_clone(issued: Path, chip_on_reader: PutChip) -> None:
    """A copy of an authentic chip's files with another AA key: passive authentication passes, AA not."""
    contents, _ = load_lds(issued / "jpeg")
    chip_on_reader(SimulatedPassport(contents, aa_key=rsa.generate_private_key(65537, 1024)))
    code, out, stderr = _read(issued, "--trust", str(issued / "ca"))
    assert code == 1
    assert out is not None and out["passive_authentication"]["valid"] is True
    assert out["active_authentication"] == {"performed": True, "valid": False}
    assert "ACTIVE_AUTHENTICATION_FAILED" in stderr


def test_wrong_mrz_and_no_card(issued: Path, chip_on_reader: PutChip, vpcd: PcscDaemon) -> None:
    code, out, stderr = _read(issued, "--wait", "0.5")
    assert (code, out) == (2, None)
    assert "no chip" in stderr and len(stderr.strip().splitlines()) == 1
    chip_on_reader(_load(issued / "jpeg"))
    code, out, stderr = _read(issued, "--trust", str(issued / "ca"), mrz="wrong-mrz.txt")
    assert (code, out) == (2, None)
    assert "AccessDenied" in stderr


def test_in_process_and_vpcd_read_alike(issued: Path, chip_on_reader: PutChip) -> None:
    """The same passport through the in-process slot and through pcscd + vpcd: one protocol code."""
    trust = TrustStore.load(issued / "ca")
    mrz = parse_mrz(TD3)
    in_process = InProcessChipReader(_load(issued / "jpeg"))
    local = read_document(in_process, mrz, trust)
    chip_on_reader(_load(issued / "jpeg"))
    over_pcsc = PcscChipReader(VPCD_READER)
    try:
        remote = read_document(over_pcsc, mrz, trust)
    finally:
        over_pcsc.close()
    for result in (local, remote):
        assert result.authentic, result.reasons
        assert result.portrait is not None and result.portrait.pixels is not None
    without_timing = [{k: v for k, v in r.to_json().items() if k != "timing"} for r in (local, remote)]
    assert without_timing[0] == without_timing[1]
    assert local.timing.apdus == remote.timing.apdus


def test_in_process_card_removed_mid_read(issued: Path) -> None:
    from drivers.chip.errors import NoCardError

    reader = InProcessChipReader(_load(issued / "jpeg"))
    reader.slot.remove_after = 12
    with pytest.raises(NoCardError):
        read_document(reader, parse_mrz(TD3), TrustStore())
    assert not reader.wait_for_card(0)
