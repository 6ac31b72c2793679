"""The chip's side of Active Authentication (ICAO 9303-11 §6.1): sign INTERNAL AUTHENTICATE's
8-byte challenge with the private key whose public half is in DG15.

RSA: ISO/IEC 9796-2 digital signature scheme 1 with partial message recovery, the chip's own
random M1 and the challenge as M2; SHA-1 with the implicit trailer BC, any other hash with the
explicit trailer (hash identifier, CC). cryptography offers no raw RSA private operation, so it is
the modular exponentiation of the key's own numbers. ECDSA: the plain r||s format of BSI TR-03111.
The verifier is the kiosk's (``kiosk.chip.active``).
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from drivers.chip.lds.sod import HASHES, digest

# ISO/IEC 10118-3 hash-function identifiers used in the explicit trailer.
HASH_IDS = {"sha1": 0x33, "sha256": 0x34, "sha512": 0x35, "sha384": 0x36, "sha224": 0x38}
TRAILER_IMPLICIT = 0xBC
HEADER_PARTIAL_RECOVERY = 0x6A


def trailer(hash_name: str) -> bytes:
    return bytes([TRAILER_IMPLICIT]) if hash_name == "sha1" else bytes([HASH_IDS[hash_name], 0xCC])


def sign_rsa(key: rsa.RSAPrivateKey, challenge: bytes, hash_name: str = "sha1") -> bytes:
    k = key.key_size // 8
    tail = trailer(hash_name)
    hash_len = HASHES[hash_name].digest_size
    m1 = os.urandom(k - 1 - hash_len - len(tail))
    block = bytes([HEADER_PARTIAL_RECOVERY]) + m1 + digest(hash_name, m1 + challenge) + tail
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    return pow(int.from_bytes(block, "big"), numbers.d, n).to_bytes(k, "big")


def sign_ecdsa(key: ec.EllipticCurvePrivateKey, challenge: bytes, hash_name: str = "sha256") -> bytes:
    r, s = decode_dss_signature(key.sign(challenge, ec.ECDSA(HASHES[hash_name]())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign_challenge(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, challenge: bytes, hash_name: str | None = None
) -> bytes:
    """INTERNAL AUTHENTICATE's response for ``challenge`` (default hash: SHA-1 for RSA, as most
    passports, and SHA-256 for ECDSA, which DG14 then names)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return sign_rsa(key, challenge, hash_name or "sha1")
    return sign_ecdsa(key, challenge, hash_name or "sha256")
