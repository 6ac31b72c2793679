"""Checking CMS signatures (EF.SOD, master lists) with ``cryptography``: the messageDigest and
contentType attributes, then the signer's signature over the signed attributes (RFC 5652 §5.4)."""

from __future__ import annotations

import contextlib

from asn1crypto import algos, cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from drivers.chip.lds.sod import HASHES, digest, signed_attrs_der


def verify(
    public_key: object, algorithm: algos.SignedDigestAlgorithm, hash_name: str, signature: bytes, data: bytes
) -> bool:
    """Whether ``signature`` by ``public_key`` over ``data`` is valid under ``algorithm``
    (RSA PKCS #1 v1.5, RSASSA-PSS or ECDSA; the hash from the algorithm when it names one)."""
    kind = algorithm.signature_algo
    with contextlib.suppress(ValueError):  # plain rsaEncryption: the SignerInfo's digestAlgorithm decides
        hash_name = algorithm.hash_algo
    if hash_name not in HASHES:
        return False
    chosen = HASHES[hash_name]()
    try:
        if kind == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), chosen)
        elif kind == "rsassa_pss" and isinstance(public_key, rsa.RSAPublicKey):
            params = algorithm["parameters"]
            pss_hash = HASHES[params["hash_algorithm"]["algorithm"].native]()
            pss = padding.PSS(padding.MGF1(pss_hash), params["salt_length"].native)
            public_key.verify(signature, data, pss, pss_hash)
        elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(chosen))
        else:
            return False
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


def signer_certificate(signed_data: cms.SignedData) -> x509.Certificate | None:
    """The certificate the SignerInfo's sid names, from the SignedData's own certificate set."""
    info = signed_data["signer_infos"][0]
    sid = info["sid"]
    # RFC 5652 §5.3: version 1 goes with issuerAndSerialNumber, version 3 with subjectKeyIdentifier
    if info["version"].native != ("v1" if sid.name == "issuer_and_serial_number" else "v3"):
        return None
    for choice in signed_data["certificates"] or ():
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if cert.issuer == wanted["issuer"] and cert.serial_number == wanted["serial_number"].native:
                return x509.load_der_x509_certificate(cert.dump())
        elif cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    return None


def verify_signed_data(signed_data: cms.SignedData, signer: x509.Certificate) -> bool:
    """The single SignerInfo's signed attributes bind the eContent (contentType and messageDigest
    present and right) and carry a valid signature by ``signer``."""
    info = signed_data["signer_infos"][0]
    encap = signed_data["encap_content_info"]
    hash_name = info["digest_algorithm"]["algorithm"].native
    if hash_name not in HASHES or not info["signed_attrs"]:
        return False
    attrs = {attr["type"].native: attr["values"] for attr in info["signed_attrs"]}
    digests = attrs.get("message_digest")
    types = attrs.get("content_type")
    if digests is None or types is None or len(digests) != 1 or len(types) != 1:
        return False
    if digests[0].native != digest(hash_name, encap["content"].contents):
        return False
    if types[0].dotted != encap["content_type"].dotted:
        return False
    return verify(
        signer.public_key(),
        info["signature_algorithm"],
        hash_name,
        info["signature"].native,
        signed_attrs_der(info),
    )
