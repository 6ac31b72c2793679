"""EF.SOD (ICAO 9303-10 §4.6.2, 9303-12 §9): a CMS SignedData whose content is the LDS Security
Object (the hash of every data group), signed by the Document Signer. Building it here serves the
test issuer and the simulator; the trust decision over it is the kiosk's (``kiosk.chip.passive``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, core, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from drivers.chip import tlv
from drivers.chip.lds.asn1 import ID_LDS_SECURITY_OBJECT, LDSSecurityObject

_TAG_SOD = 0x77
HASHES = {"sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
          "sha512": hashes.SHA512}  # fmt: skip


def digest(hash_name: str, data: bytes) -> bytes:
    return hashlib.new(hash_name, data).digest()


def build_security_object(hash_name: str, data_groups: dict[int, bytes]) -> bytes:
    """DER LDSSecurityObject v0 over the given data group files (number -> whole file bytes)."""
    return LDSSecurityObject(
        {
            "version": 0,
            "hash_algorithm": {"algorithm": hash_name},
            "data_group_hash_values": [
                {"data_group_number": n, "data_group_hash_value": digest(hash_name, data_groups[n])}
                for n in sorted(data_groups)
            ],
        }
    ).dump()


def signed_attrs_der(signer_info: cms.SignerInfo) -> bytes:
    """The bytes the signature covers: the signed attributes re-tagged from [0] IMPLICIT to the
    universal SET OF (RFC 5652 §5.4), taken from the encoding as received so nothing is re-encoded."""
    raw = signer_info["signed_attrs"].dump()
    return b"\x31" + raw[1:]


def _sign(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, hash_name: str, data: bytes) -> bytes:
    algorithm = HASHES[hash_name]()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    return key.sign(data, ec.ECDSA(algorithm))


def sign_cms(
    content_type: str,
    content: bytes,
    cert: cx509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    hash_name: str = "sha256",
    signing_time: datetime | None = None,
) -> bytes:
    """DER ContentInfo of a SignedData over ``content`` with the signer certificate included, as
    ICAO uses for EF.SOD and for master lists (9303-12 §9)."""
    cert_asn1 = x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": [content_type]},
            {"type": "signing_time", "values": [cms.Time({"utc_time": signing_time or datetime.now(UTC)})]},
            {"type": "message_digest", "values": [digest(hash_name, content)]},
        ]
    )
    key_algo = "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ecdsa"
    serial = {"issuer": cert_asn1.issuer, "serial_number": cert_asn1.serial_number}
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": serial}),
            "digest_algorithm": {"algorithm": hash_name},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": f"{hash_name}_{key_algo}"},
            "signature": _sign(key, hash_name, attrs.dump()),
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": hash_name})],
            "encap_content_info": {
                "content_type": content_type,
                "content": core.ParsableOctetString(content),
            },
            "certificates": [cert_asn1],
            "signer_infos": [signer],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def sign_sod(
    security_object: bytes,
    ds_cert: cx509.Certificate,
    ds_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    hash_name: str = "sha256",
) -> bytes:
    """EF.SOD: tag 77 around the SignedData of the Document Signer over ``security_object``."""
    return tlv.encode(_TAG_SOD, sign_cms(ID_LDS_SECURITY_OBJECT, security_object, ds_cert, ds_key, hash_name))


def load_signed_data(der: bytes, content_type: str) -> cms.SignedData:
    """The SignedData of a DER ContentInfo whose eContent is of ``content_type`` (ValueError if not)."""
    content_info = cms.ContentInfo.load(der, strict=True)
    if content_info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    signed_data = content_info["content"]
    found = signed_data["encap_content_info"]["content_type"].dotted
    if found != content_type:
        raise ValueError(f"content type {found}, expected {content_type}")
    if len(signed_data["signer_infos"]) != 1:
        raise ValueError(f"{len(signed_data['signer_infos'])} signers, not one")
    # ICAO 9303-12 §9: SignedData version 3, and the signer's digest algorithm among those declared
    if signed_data["version"].native != "v3":
        raise ValueError(f"SignedData version {signed_data['version'].native}, not v3")
    signer_digest = signed_data["signer_infos"][0]["digest_algorithm"]["algorithm"].dotted
    if signer_digest not in {a["algorithm"].dotted for a in signed_data["digest_algorithms"]}:
        raise ValueError("the signer's digest algorithm is not in digestAlgorithms")
    return signed_data


@dataclass(frozen=True)
class Sod:
    signed_data: cms.SignedData
    signer_info: cms.SignerInfo
    security_object_der: bytes  # the eContent exactly as signed
    hash_name: str
    hashes: dict[int, bytes]  # data group number -> hash value


def parse_sod(data: bytes) -> Sod:
    """EF.SOD parsed (ValueError when it is not one SignedData over an LDS Security Object)."""
    signed_data = load_signed_data(tlv.unwrap(data, _TAG_SOD), ID_LDS_SECURITY_OBJECT)
    lso_der = signed_data["encap_content_info"]["content"].contents
    lso = LDSSecurityObject.load(lso_der, strict=True)
    hash_name = lso["hash_algorithm"]["algorithm"].native
    if hash_name not in HASHES:
        raise ValueError(f"unsupported data group hash {hash_name}")
    values = {
        v["data_group_number"].native: v["data_group_hash_value"].native
        for v in lso["data_group_hash_values"]
    }
    return Sod(signed_data, signed_data["signer_infos"][0], lso_der, hash_name, values)
