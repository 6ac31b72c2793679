"""The two secure-messaging cipher suites of ICAO 9303-11 and their key derivation.

3DES (BAC, PACE-3DES): two-key 3DES-CBC with a zero IV, ISO/IEC 9797-1 MAC algorithm 3 ("retail
MAC") with single DES. AES (PACE-AES): AES-CBC whose IV is the send-sequence counter encrypted
under KSenc, and AES-CMAC cut to 8 bytes. Both MAC over data padded with ISO/IEC 9797-1 method 2.
Primitives come from ``cryptography``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

KEY_ENC = 1
KEY_MAC = 2
KEY_PACE_PASSWORD = 3
MAC_SIZE = 8

Algorithm = Literal["3DES", "AES"]


def pad(data: bytes, block: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80 then zeros up to the block boundary."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block)


def unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise ValueError("bad ISO 9797-1 method 2 padding")
    return stripped[:-1]


def adjust_parity(key: bytes) -> bytes:
    """DES keys carry odd parity in each byte's lowest bit."""
    return bytes((b & 0xFE) | ((bin(b >> 1).count("1") + 1) % 2) for b in key)


def kdf(secret: bytes, counter: int, algorithm: Algorithm, key_bits: int = 128) -> bytes:
    """ICAO 9303-11 §9.7.1: hash of the shared secret and a 32-bit counter, cut to the key size."""
    data = secret + counter.to_bytes(4, "big")
    if algorithm == "3DES":
        return adjust_parity(hashlib.sha1(data).digest()[:16])
    digest = hashlib.sha1(data).digest() if key_bits == 128 else hashlib.sha256(data).digest()
    return digest[: key_bits // 8]


def _des3(key: bytes) -> TripleDES:
    return TripleDES(key if len(key) == 24 else key + key[:8] if len(key) == 16 else key * 3)


def _run(algorithm: object, mode: modes.Mode, data: bytes, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithm, mode)  # type: ignore[arg-type]
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def des3_cbc(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    return _run(_des3(key), modes.CBC(bytes(8)), data, decrypt)


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 over already padded ``data``: DES-CBC, then 3DES on the last block."""
    ka, kb = key[:8], key[8:16]
    chain = _run(_des3(ka), modes.CBC(bytes(8)), data[:-8])[-8:] if len(data) > 8 else bytes(8)
    last = bytes(a ^ b for a, b in zip(data[-8:], chain, strict=True))
    return _run(_des3(ka + kb), modes.ECB(), last)


def aes_cbc(key: bytes, iv: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    return _run(algorithms.AES(key), modes.CBC(iv), data, decrypt)


def aes_cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()[:MAC_SIZE]


@dataclass(frozen=True)
class SessionCipher:
    """Session keys of one secure-messaging session and the suite they belong to."""

    algorithm: Algorithm
    ks_enc: bytes
    ks_mac: bytes

    @property
    def block(self) -> int:
        return 8 if self.algorithm == "3DES" else 16

    @classmethod
    def derive(cls, secret: bytes, algorithm: Algorithm, key_bits: int = 128) -> SessionCipher:
        return cls(
            algorithm, kdf(secret, KEY_ENC, algorithm, key_bits), kdf(secret, KEY_MAC, algorithm, key_bits)
        )

    def encrypt(self, ssc: bytes, data: bytes) -> bytes:
        return self._crypt(ssc, data, decrypt=False)

    def decrypt(self, ssc: bytes, data: bytes) -> bytes:
        return self._crypt(ssc, data, decrypt=True)

    def mac(self, data: bytes) -> bytes:
        """MAC over ``data`` as given (secure messaging pads it, with the SSC in front, beforehand)."""
        if self.algorithm == "3DES":
            return retail_mac(self.ks_mac, data)
        return aes_cmac(self.ks_mac, data)

    def _crypt(self, ssc: bytes, data: bytes, *, decrypt: bool) -> bytes:
        if self.algorithm == "3DES":
            return des3_cbc(self.ks_enc, data, decrypt=decrypt)
        iv = _run(algorithms.AES(self.ks_enc), modes.ECB(), ssc)
        return aes_cbc(self.ks_enc, iv, data, decrypt=decrypt)
