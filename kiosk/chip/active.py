"""Verifying Active Authentication (ICAO 9303-11 §6.1), the anti-cloning check: the chip signs the
kiosk's random challenge with a private key that never leaves it, whose public key is in DG15
(itself covered by the SOD, so passive authentication must pass too for this to mean anything).

RSA responses follow ISO/IEC 9796-2 scheme 1 (message recovery): the kiosk recovers the signed
block with the public key, takes the chip's nonce M1 out of it and checks the hash of M1 and the
challenge. cryptography has no raw RSA verification, so recovery is the modular exponentiation of
the public numbers. ECDSA responses are plain r||s (BSI TR-03111) over the challenge, hashed with
what DG14's ActiveAuthenticationInfo names (SHA-256 without one).
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from drivers.chip.lds import files
from drivers.chip.lds.aa import HASH_IDS, TRAILER_IMPLICIT
from drivers.chip.lds.sod import HASHES, digest

CHALLENGE_LENGTH = 8
AA_FAILED = "ACTIVE_AUTHENTICATION_FAILED"  # reason code: the chip may be a clone
_HASH_BY_ID = {v: k for k, v in HASH_IDS.items()}


def _recover_hash(block: bytes) -> tuple[str, int] | None:
    """(hash name, trailer length) from the recovered block's trailer; None if it is not 9796-2."""
    if block[-1] == TRAILER_IMPLICIT:
        return "sha1", 1
    if block[-1] == 0xCC and block[-2] in _HASH_BY_ID:
        return _HASH_BY_ID[block[-2]], 2
    return None


def _verify_rsa(key: rsa.RSAPublicKey, challenge: bytes, response: bytes) -> bool:
    numbers = key.public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    signature = int.from_bytes(response, "big")
    if len(response) != size or not 0 < signature < numbers.n:
        return False
    recovered = pow(signature, numbers.e, numbers.n)
    for value in (recovered, numbers.n - recovered):  # 9796-2 lets the signer send n - s instead
        block = value.to_bytes(size, "big")
        if block[0] & 0xC0 != 0x40 or block[-1] & 0x0F != 0x0C:
            continue
        found = _recover_hash(block)
        if found is None:
            return False
        hash_name, trailer = found
        hash_len = HASHES[hash_name].digest_size
        # the header's padding nibbles end with the first low nibble A; the nonce M1 follows
        start = next((i + 1 for i, b in enumerate(block) if b & 0x0F == 0x0A), None)
        end = size - trailer - hash_len
        if start is None or start > end:
            return False
        m1, signed_hash = block[start:end], block[end : size - trailer]
        partial = bool(block[0] & 0x20)
        message = m1 + challenge if partial else m1
        if not partial and m1 != challenge:
            return False
        return hmac.compare_digest(digest(hash_name, message), signed_hash)
    return False


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, challenge: bytes, response: bytes, hash_name: str) -> bool:
    size = (key.curve.key_size + 7) // 8
    if len(response) != 2 * size:
        return False
    r, s = int.from_bytes(response[:size], "big"), int.from_bytes(response[size:], "big")
    if r == 0 or s == 0:
        return False
    try:
        key.verify(encode_dss_signature(r, s), challenge, ec.ECDSA(HASHES[hash_name]()))
    except InvalidSignature:
        return False
    return True


def verify_active_authentication(
    dg15: bytes, challenge: bytes, response: bytes, dg14: bytes | None = None
) -> bool:
    """Whether ``response`` to INTERNAL AUTHENTICATE with ``challenge`` was made by DG15's key
    (False for a malformed DG15 or response; ValueError only for a challenge of the wrong size,
    which is the kiosk's own mistake)."""
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError(f"the challenge is {CHALLENGE_LENGTH} bytes")
    try:
        key = load_der_public_key(files.parse_dg15(dg15))
    except (ValueError, UnsupportedAlgorithm):  # DG15 comes from the chip: a broken one fails AA
        return False
    if isinstance(key, rsa.RSAPublicKey):
        return _verify_rsa(key, challenge, response)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _verify_ecdsa(key, challenge, response, files.aa_hash(dg14) or "sha256")
    return False
