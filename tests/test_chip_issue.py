"""``python -m kiosk chip issue``: a test passport's LDS, parsed back file by file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_private_key
from cryptography.x509.oid import NameOID

from drivers.chip.lds import aa, face, files, sod
from kiosk.chip.active import verify_active_authentication
from kiosk.chip.passive import passive_authentication
from kiosk.chip.trust import TrustStore
from kiosk.cli import main
from tests.chip_material import TD1, TD3, encode, portrait


def _write_inputs(tmp_path: Path, lines: list[str], fmt: str = "jpeg") -> tuple[Path, Path]:
    mrz = tmp_path / "mrz.txt"
    mrz.write_text("\n".join(lines) + "\n")
    image = tmp_path / ("face.jpg" if fmt == "jpeg" else "face.png")
    if fmt == "jpeg":
        image.write_bytes(encode(portrait(300, 400), "jpeg"))
    else:
        cv2.imwrite(str(image), cv2.cvtColor(portrait(300, 400), cv2.COLOR_RGB2BGR))
    return mrz, image


def _read(out: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in out.glob("*.bin")}


def test_issue_writes_a_parseable_signed_lds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mrz, image = _write_inputs(tmp_path, TD3)
    out, ca = tmp_path / "lds", tmp_path / "ca"
    argv = ["chip", "issue", "--mrz-file", str(mrz), "--portrait", str(image), "--out", str(out)]
    assert main([*argv, "--ca", str(ca)]) == 0
    assert '"test_pki": true' in capsys.readouterr().out
    lds = _read(out)
    assert set(lds) == {"COM", "DG1", "DG2", "SOD"}
    assert files.parse_com(lds["COM"]).data_groups == (1, 2)
    assert files.parse_dg1(lds["DG1"]) == TD3
    (photo,) = face.parse_dg2(lds["DG2"])
    assert (photo.format, photo.width, photo.height) == ("jpeg", 300, 400)
    assert photo.data == image.read_bytes()  # a JPEG input is stored byte for byte

    parsed = sod.parse_sod(lds["SOD"])
    assert parsed.hash_name == "sha256"
    assert parsed.hashes == {n: hashlib.sha256(lds[f"DG{n}"]).digest() for n in (1, 2)}

    csca = x509.load_pem_x509_certificate((ca / "csca-UT.pem").read_bytes())
    ds = x509.load_der_x509_certificate(parsed.signed_data["certificates"][0].chosen.dump())
    assert ds.issuer == csca.subject
    for cert in (csca, ds):
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Gerbang TEST PKI"
        assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "UT"
    usage = csca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert ds.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature

    # a second passport from the same --ca reuses its CSCA and DS
    assert main([*argv[:-1], str(tmp_path / "second"), "--ca", str(ca)]) == 0
    again = sod.parse_sod(_read(tmp_path / "second")["SOD"])
    assert (
        again.signed_data["certificates"][0].chosen.dump()
        == parsed.signed_data["certificates"][0].chosen.dump()
    )


@pytest.mark.parametrize(
    ("aa_kind", "key_type"), [("rsa", rsa.RSAPrivateKey), ("ec", ec.EllipticCurvePrivateKey)]
)
def test_issue_with_jpeg2000_aa_and_pace(tmp_path: Path, aa_kind: str, key_type: type) -> None:
    mrz, image = _write_inputs(tmp_path, TD1, fmt="png")
    out = tmp_path / "lds"
    argv = ["chip", "issue", "--mrz-file", str(mrz), "--portrait", str(image), "--out", str(out)]
    assert main([*argv, "--ca", str(tmp_path / "ca"), "--jpeg2000", "--aa", aa_kind, "--pace"]) == 0
    lds = _read(out)
    (photo,) = face.parse_dg2(lds["DG2"])
    assert photo.format == face.sniff_format(photo.data) == "jpeg2000"
    assert face.decode_image(photo.data).shape == (400, 300, 3)
    key = load_pem_private_key((out / "AA.key.pem").read_bytes(), password=None)
    assert isinstance(key, key_type)
    assert (
        load_der_public_key(files.parse_dg15(lds["DG15"])).public_numbers()
        == key.public_key().public_numbers()
    )
    expected = {1, 2, 15} | ({14} if aa_kind == "ec" else set())
    assert set(files.parse_com(lds["COM"]).data_groups) == expected
    assert set(sod.parse_sod(lds["SOD"]).hashes) == expected
    assert files.aa_hash(lds.get("DG14")) == ("sha256" if aa_kind == "ec" else None)
    assert [p.parameter_id for p in files.pace_infos(lds["CardAccess"])] == [13]
    # the chip's AA key answers a challenge as the simulator will, and the kiosk accepts it
    challenge = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    response = aa.sign_challenge(key, challenge, files.aa_hash(lds.get("DG14")))
    assert verify_active_authentication(lds["DG15"], challenge, response, lds.get("DG14"))


def test_issue_refuses_a_bad_mrz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mrz, image = _write_inputs(tmp_path, [TD3[0], TD3[1][:-1] + "9"])
    argv = ["chip", "issue", "--mrz-file", str(mrz), "--portrait", str(image), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("cannot issue:")


def test_trust_import_checks_then_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mrz, image = _write_inputs(tmp_path, TD3)
    ca = tmp_path / "ca"
    argv = ["chip", "issue", "--mrz-file", str(mrz), "--portrait", str(image), "--out", str(tmp_path / "o")]
    assert main([*argv, "--ca", str(ca)]) == 0
    capsys.readouterr()
    junk = tmp_path / "junk.der"
    junk.write_bytes(b"\x30\x03\x02\x01\x00")
    store = tmp_path / "trust"
    # the DS certificate is not a CA: refused like the junk, while the CSCA goes in
    files_in = [ca / "csca-UT.pem", ca / "ds-UT.pem", junk]
    assert main(["chip", "trust", "import", *map(str, files_in), "--store", str(store)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert [i["stored"] for i in report["imported"]] == ["csca-UT.pem"]
    assert [r["file"] for r in report["refused"]] == [str(ca / "ds-UT.pem"), str(junk)]
    assert sorted(p.name for p in store.iterdir()) == ["csca-UT.pem"]
    lds = _read(tmp_path / "o")
    assert passive_authentication(lds, TrustStore.load(store)).valid
