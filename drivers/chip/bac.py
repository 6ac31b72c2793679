"""Basic Access Control (ICAO 9303-11 §4.3 and §9.7): both the reader's and the chip's side.

Keys: Kseed is the first 16 bytes of SHA-1 over the MRZ information; Kenc/Kmac derive from it.
GET CHALLENGE gives RND.IC; EXTERNAL AUTHENTICATE carries E(Kenc, RND.IFD‖RND.IC‖K.IFD) and its MAC;
the chip answers E(Kenc, RND.IC‖RND.IFD‖K.IC) and its MAC; the session keys derive from K.IFD⊕K.IC
and the SSC starts as the low halves of RND.IC and RND.IFD.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from drivers.chip.apdu import Command, Response
from drivers.chip.cipher import SessionCipher, des3_cbc, pad
from drivers.chip.errors import AccessDeniedError, StatusError
from drivers.chip.secure_messaging import SecureMessaging

INS_GET_CHALLENGE = 0x84
INS_EXTERNAL_AUTHENTICATE = 0x82
RANDOM_SIZE = 8
KEY_SIZE = 16
CRYPTOGRAM_SIZE = 2 * RANDOM_SIZE + KEY_SIZE  # 32 bytes, then an 8-byte MAC

Transmit = Callable[[Command], Response]
Random = Callable[[int], bytes]


def key_seed(mrz_information: str) -> bytes:
    return hashlib.sha1(mrz_information.encode("ascii")).digest()[:16]


def document_keys(mrz_information: str) -> SessionCipher:
    """Kenc and Kmac of the document (3DES, parity adjusted)."""
    return SessionCipher.derive(key_seed(mrz_information), "3DES")


def _seal(keys: SessionCipher, plain: bytes) -> bytes:
    encrypted = des3_cbc(keys.ks_enc, plain)
    return encrypted + keys.mac(pad(encrypted, 8))


def _open(keys: SessionCipher, sealed: bytes) -> bytes:
    """The plain cryptogram, or :class:`AccessDeniedError` when its MAC is not under these keys."""
    if len(sealed) != CRYPTOGRAM_SIZE + 8:
        raise AccessDeniedError("mutual authentication: cryptogram of the wrong size")
    encrypted, mac = sealed[:CRYPTOGRAM_SIZE], sealed[CRYPTOGRAM_SIZE:]
    if not hmac.compare_digest(keys.mac(pad(encrypted, 8)), mac):
        raise AccessDeniedError("mutual authentication: MAC does not verify (wrong MRZ?)")
    return des3_cbc(keys.ks_enc, encrypted, decrypt=True)


def _session(k_ifd: bytes, k_ic: bytes, rnd_ic: bytes, rnd_ifd: bytes) -> SecureMessaging:
    seed = bytes(a ^ b for a, b in zip(k_ifd, k_ic, strict=True))
    ssc = int.from_bytes(rnd_ic[-4:] + rnd_ifd[-4:], "big")
    return SecureMessaging(SessionCipher.derive(seed, "3DES"), ssc)


def authenticate(transmit: Transmit, mrz_information: str, rng: Random = os.urandom) -> SecureMessaging:
    """Run BAC as the reader; the secure-messaging session it opens."""
    challenge = transmit(Command(0x00, INS_GET_CHALLENGE, 0, 0, ne=RANDOM_SIZE))
    if not challenge.ok or len(challenge.data) != RANDOM_SIZE:
        raise StatusError("GET CHALLENGE", challenge.sw)
    rnd_ic = challenge.data
    rnd_ifd, k_ifd = rng(RANDOM_SIZE), rng(KEY_SIZE)
    keys = document_keys(mrz_information)
    sealed = _seal(keys, rnd_ifd + rnd_ic + k_ifd)
    answer = transmit(Command(0x00, INS_EXTERNAL_AUTHENTICATE, 0, 0, sealed, ne=len(sealed)))
    if not answer.ok:
        raise AccessDeniedError(f"EXTERNAL AUTHENTICATE refused (status {answer.sw:04X}; wrong MRZ?)")
    plain = _open(keys, answer.data)
    if plain[:RANDOM_SIZE] != rnd_ic or plain[RANDOM_SIZE : 2 * RANDOM_SIZE] != rnd_ifd:
        raise AccessDeniedError("mutual authentication: the chip did not return our challenge")
    return _session(k_ifd, plain[2 * RANDOM_SIZE :], rnd_ic, rnd_ifd)


class BacChip:
    """The chip's half of BAC: a challenge, then checking the reader's cryptogram and answering it."""

    def __init__(self, mrz_information: str, rng: Random = os.urandom) -> None:
        self._keys = document_keys(mrz_information)
        self._rng = rng
        self._rnd_ic: bytes | None = None

    def get_challenge(self) -> bytes:
        self._rnd_ic = self._rng(RANDOM_SIZE)
        return self._rnd_ic

    def external_authenticate(self, sealed: bytes) -> tuple[bytes, SecureMessaging]:
        """The chip's cryptogram and the session; :class:`AccessDeniedError` for a wrong key or replay."""
        rnd_ic, self._rnd_ic = self._rnd_ic, None  # one challenge, one attempt
        if rnd_ic is None:
            raise AccessDeniedError("no challenge outstanding")
        plain = _open(self._keys, sealed)
        rnd_ifd, k_ifd = plain[:RANDOM_SIZE], plain[2 * RANDOM_SIZE :]
        if plain[RANDOM_SIZE : 2 * RANDOM_SIZE] != rnd_ic:
            raise AccessDeniedError("mutual authentication: not our challenge")
        k_ic = self._rng(KEY_SIZE)
        return _seal(self._keys, rnd_ic + rnd_ifd + k_ic), _session(k_ifd, k_ic, rnd_ic, rnd_ifd)
