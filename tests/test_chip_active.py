"""Active Authentication: the chip-side signer (drivers.chip.lds.aa) against the kiosk's verifier."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from drivers.chip.lds import aa, files
from kiosk.chip.active import verify_active_authentication


def _dg15(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return files.build_dg15(spki)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha512"])
def test_rsa_iso9796_2(rsa_key: rsa.RSAPrivateKey, hash_name: str) -> None:
    challenge = os.urandom(8)
    response = aa.sign_challenge(rsa_key, challenge, hash_name)
    assert len(response) == 128
    dg15 = _dg15(rsa_key)
    assert verify_active_authentication(dg15, challenge, response)
    assert not verify_active_authentication(dg15, bytes(8), response)  # another challenge
    flipped = response[:-1] + bytes([response[-1] ^ 1])
    assert not verify_active_authentication(dg15, challenge, flipped)
    assert not verify_active_authentication(dg15, challenge, response[1:])
    other = _dg15(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert not verify_active_authentication(other, challenge, response)  # a clone's key


def test_rsa_signer_may_send_n_minus_s(rsa_key: rsa.RSAPrivateKey) -> None:
    challenge = os.urandom(8)
    s = int.from_bytes(aa.sign_challenge(rsa_key, challenge), "big")
    n = rsa_key.public_key().public_numbers().n
    assert verify_active_authentication(_dg15(rsa_key), challenge, (n - s).to_bytes(128, "big"))


@pytest.mark.parametrize(
    ("curve", "hash_name"),
    [(ec.BrainpoolP256R1(), "sha256"), (ec.SECP384R1(), "sha384"), (ec.SECP256R1(), None)],
)
def test_ecdsa_plain(curve: ec.EllipticCurve, hash_name: str | None) -> None:
    key = ec.generate_private_key(curve)
    dg14 = files.build_dg14([files.aa_info(hash_name)]) if hash_name else None
    challenge = os.urandom(8)
    response = aa.sign_challenge(key, challenge, hash_name)
    assert len(response) == 2 * ((curve.key_size + 7) // 8)
    assert verify_active_authentication(_dg15(key), challenge, response, dg14)
    assert not verify_active_authentication(_dg15(key), os.urandom(8), response, dg14)
    assert not verify_active_authentication(_dg15(key), challenge, response[:-1] + b"\0", dg14)
    assert not verify_active_authentication(_dg15(ec.generate_private_key(curve)), challenge, response, dg14)
    if hash_name == "sha384":  # DG14 names the hash: verifying with another fails
        assert not verify_active_authentication(_dg15(key), challenge, response, None)


def test_challenge_must_be_eight_bytes_and_a_broken_dg15_fails(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        verify_active_authentication(_dg15(rsa_key), bytes(4), bytes(128))
    assert not verify_active_authentication(_dg15(rsa_key)[:-5], bytes(8), bytes(128))
    assert not verify_active_authentication(files.build_dg15(b"\x30\x00"), bytes(8), bytes(128))
