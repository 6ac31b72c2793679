"""The LDS files other than DG2 and EF.SOD: EF.COM, DG1, DG14, DG15 and EF.CardAccess (ICAO 9303-10),
built and parsed; where each file lives is :mod:`drivers.chip.files`."""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core, keys

from drivers.chip import tlv
from drivers.chip.files import DG_BY_TAG, TAG_BY_DG
from drivers.chip.lds.asn1 import (
    ECDSA_PLAIN,
    ECDSA_PLAIN_BY_HASH,
    ID_AA_PROTOCOL,
    ID_PACE_ECDH_GM_AES_128,
    PARAM_BRAINPOOL_P256R1,
    SecurityInfo,
    SecurityInfos,
)

LDS_VERSION = "0107"  # LDS 1.7
UNICODE_VERSION = "040000"

_TAG_LDS_VERSION = 0x5F01
_TAG_UNICODE_VERSION = 0x5F36
_TAG_TAG_LIST = 0x5C
_TAG_MRZ = 0x5F1F


# --- EF.COM ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Com:
    lds_version: str
    unicode_version: str
    data_groups: tuple[int, ...]  # numbers, in the order listed


def build_com(data_groups: list[int], lds_version: str = LDS_VERSION) -> bytes:
    tags = bytes(TAG_BY_DG[dg] for dg in data_groups)
    return tlv.encode(
        0x60,
        tlv.encode(_TAG_LDS_VERSION, lds_version.encode())
        + tlv.encode(_TAG_UNICODE_VERSION, UNICODE_VERSION.encode())
        + tlv.encode(_TAG_TAG_LIST, tags),
    )


def parse_com(data: bytes) -> Com:
    value = tlv.unwrap(data, 0x60)
    tags = tlv.child(value, _TAG_TAG_LIST)
    unknown = [t for t in tags if t not in DG_BY_TAG]
    if unknown:
        raise tlv.TlvError(f"EF.COM lists unknown tags {bytes(unknown).hex()}")
    return Com(
        tlv.child(value, _TAG_LDS_VERSION).decode("ascii"),
        tlv.child(value, _TAG_UNICODE_VERSION).decode("ascii"),
        tuple(DG_BY_TAG[t] for t in tags),
    )


# --- DG1 -------------------------------------------------------------------------------------------

_MRZ_LINE_LENGTHS = {88: 44, 90: 30, 72: 36}  # TD3, TD1, TD2/MRV-B: total length -> line length


def build_dg1(mrz_lines: list[str]) -> bytes:
    return tlv.encode(0x61, tlv.encode(_TAG_MRZ, "".join(mrz_lines).encode("ascii")))


def parse_dg1(data: bytes) -> list[str]:
    """The MRZ lines stored in DG1 (the data element has no line breaks: split by its length)."""
    text = tlv.child(tlv.unwrap(data, 0x61), _TAG_MRZ).decode("ascii")
    width = _MRZ_LINE_LENGTHS.get(len(text))
    if width is None:
        raise tlv.TlvError(f"DG1 holds {len(text)} MRZ characters, not a TD1, TD2 or TD3 MRZ")
    return [text[i : i + width] for i in range(0, len(text), width)]


# --- DG15 ------------------------------------------------------------------------------------------


def build_dg15(public_key_der: bytes) -> bytes:
    """DG15 around a DER SubjectPublicKeyInfo (the Active Authentication key)."""
    return tlv.encode(0x6F, public_key_der)


def parse_dg15(data: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo in DG15 (checked to parse as one)."""
    der = tlv.unwrap(data, 0x6F)
    keys.PublicKeyInfo.load(der, strict=True)
    return der


# --- DG14 and EF.CardAccess: SecurityInfos ---------------------------------------------------------


def aa_info(hash_name: str) -> SecurityInfo:
    """ActiveAuthenticationInfo naming the ECDSA plain-signature algorithm of an EC AA key."""
    return SecurityInfo(
        {
            "protocol": ID_AA_PROTOCOL,
            "required_data": core.Integer(1),
            "optional_data": core.ObjectIdentifier(ECDSA_PLAIN + ECDSA_PLAIN_BY_HASH[hash_name]),
        }
    )


def pace_info(
    protocol: str = ID_PACE_ECDH_GM_AES_128, parameter_id: int = PARAM_BRAINPOOL_P256R1
) -> SecurityInfo:
    return SecurityInfo(
        {"protocol": protocol, "required_data": core.Integer(2), "optional_data": core.Integer(parameter_id)}
    )


def build_dg14(infos: list[SecurityInfo]) -> bytes:
    return tlv.encode(0x6E, SecurityInfos(infos).dump())


def build_card_access(infos: list[SecurityInfo]) -> bytes:
    return SecurityInfos(infos).dump()


@dataclass(frozen=True)
class PaceInfo:
    protocol: str
    version: int
    parameter_id: int | None


def parse_security_infos(data: bytes) -> SecurityInfos:
    """SecurityInfos of EF.CardAccess (a bare SET) or DG14 (the SET inside tag 6E)."""
    der = tlv.unwrap(data, 0x6E) if data[:1] == b"\x6e" else data
    infos = SecurityInfos.load(der, strict=True)
    for info in infos:
        info["protocol"].dotted  # noqa: B018 - force the lazy parse so malformed input fails here
    return infos


def pace_infos(data: bytes) -> list[PaceInfo]:
    """The PACEInfos of EF.CardAccess, in the chip's order (ICAO 9303-11 §4.4)."""
    found = []
    for info in parse_security_infos(data):
        oid = info["protocol"].dotted
        if not oid.startswith("0.4.0.127.0.7.2.2.4."):
            continue
        version = core.Integer.load(info["required_data"].dump()).native
        optional = info["optional_data"]
        parameter = None if optional.native is None else core.Integer.load(optional.dump()).native
        found.append(PaceInfo(oid, version, parameter))
    return found


def aa_hash(dg14: bytes | None) -> str | None:
    """The hash an EC Active Authentication signs with, from DG14's ActiveAuthenticationInfo."""
    if dg14 is None:
        return None
    by_oid = {ECDSA_PLAIN + arc: name for name, arc in ECDSA_PLAIN_BY_HASH.items()}
    for info in parse_security_infos(dg14):
        if info["protocol"].dotted == ID_AA_PROTOCOL and info["optional_data"].native is not None:
            oid = core.ObjectIdentifier.load(info["optional_data"].dump()).dotted
            return by_oid.get(oid)
    return None
