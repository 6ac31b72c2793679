"""LDS encoding and decoding (drivers/chip/lds): every file built and parsed back."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from drivers.chip import tlv
from drivers.chip.lds import face, files
from drivers.chip.lds.asn1 import ID_PACE_ECDH_GM_AES_128, PARAM_NIST_P256
from tests.chip_material import TD1, TD3, encode, portrait


@pytest.mark.parametrize("length", [0, 5, 127, 128, 255, 256, 70000])
def test_tlv_round_trip_and_length_from_the_head(length: int) -> None:
    value = bytes(range(256)) * (length // 256) + bytes(length % 256)
    for tag in (0x5C, 0x5F1F, 0x7F61, 0x77):
        data = tlv.encode(tag, value)
        assert tlv.decode(data) == (tag, value, len(data))
        assert tlv.total_length(data[:6]) == len(data)
        assert tlv.total_length(data[:1]) is None


def test_com_lists_the_data_groups() -> None:
    com = files.parse_com(files.build_com([1, 2, 15]))
    assert com == files.Com("0107", "040000", (1, 2, 15))
    assert files.build_com([1, 2]) == bytes.fromhex("6014 5f0104 30313037 5f3606 303430303030 5c02 6175")


@pytest.mark.parametrize("lines", [TD3, TD1])
def test_dg1_holds_the_mrz_lines(lines: list[str]) -> None:
    data = files.build_dg1(lines)
    assert data[:1] == b"\x61"
    assert files.parse_dg1(data) == lines


@pytest.mark.parametrize("fmt", [face.JPEG, face.JPEG2000])
def test_dg2_portrait_round_trip_and_decode(fmt: str) -> None:
    rgb = portrait(240, 320)
    image = encode(rgb, fmt)
    dg2 = face.build_dg2([face.FaceImage(fmt, 240, 320, image)])
    assert dg2[:1] == b"\x75"
    (parsed,) = face.parse_dg2(dg2)
    assert parsed == face.FaceImage(fmt, 240, 320, image)
    assert face.sniff_format(parsed.data) == fmt
    pixels = face.decode_image(parsed.data)
    assert pixels.shape == (320, 240, 3)
    # the decode is faithful, not merely the right size (lossy codecs: mean error stays small)
    assert abs(pixels.astype(int) - rgb.astype(int)).mean() < 12


def test_dg2_rejects_broken_records() -> None:
    good = face.build_dg2([face.FaceImage(face.JPEG, 10, 10, b"\xff\xd8abc")])
    with pytest.raises(face.FaceError):
        face.parse_dg2(good.replace(b"FAC\0", b"FAX\0"))
    with pytest.raises(face.FaceError):
        face.parse_dg2(good[:-2])
    with pytest.raises(face.FaceError):
        face.decode_image(b"\xff\xd8 not a jpeg")


def test_dg15_card_access_and_dg14() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert files.parse_dg15(files.build_dg15(spki)) == spki

    access = files.build_card_access([files.pace_info(), files.pace_info(parameter_id=PARAM_NIST_P256)])
    assert access[:1] == b"\x31"
    assert sorted(files.pace_infos(access), key=str) == [
        files.PaceInfo(ID_PACE_ECDH_GM_AES_128, 2, 12),
        files.PaceInfo(ID_PACE_ECDH_GM_AES_128, 2, 13),
    ]
    dg14 = files.build_dg14([files.aa_info("sha384")])
    assert dg14[:1] == b"\x6e"
    assert files.aa_hash(dg14) == "sha384"
    assert files.aa_hash(None) is None
