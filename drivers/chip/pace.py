"""PACE v2 with Generic Mapping on ECDH (ICAO 9303-11 §4.4, §9.2), both the reader's and the chip's side.

The chip sends a nonce s encrypted under Kπ (from the MRZ password); both sides map the curve's
generator with an ephemeral Diffie-Hellman, G' = s·G + H, agree a key on G', and prove it to each
other with MACs over the other's ephemeral public key. ``cryptography`` does not expose point
addition or arbitrary generators, so the curve arithmetic comes from ``fastecdsa``.
EF.CardAccess (a SET of SecurityInfos, DER) says which variants the chip offers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from fastecdsa import curve as curves
from fastecdsa.point import Point

from drivers.chip import tlv
from drivers.chip.apdu import Command, Response
from drivers.chip.cipher import KEY_PACE_PASSWORD, Algorithm, SessionCipher, aes_cbc, des3_cbc, kdf, pad
from drivers.chip.errors import AccessDeniedError, StatusError
from drivers.chip.secure_messaging import SecureMessaging

Transmit = Callable[[Command], Response]
Random = Callable[[int], bytes]

ID_PACE = bytes.fromhex("04007F0007020204")  # 0.4.0.127.0.7.2.2.4 (DER contents)
ECDH_GM = 0x02
CIPHERS: dict[int, tuple[Algorithm, int]] = {
    1: ("3DES", 128),
    2: ("AES", 128),
    3: ("AES", 192),
    4: ("AES", 256),
}
# ICAO 9303-11 §9.5.1 standardized domain parameters that fastecdsa provides.
CURVES: dict[int, curves.Curve] = {
    8: curves.P192,
    9: curves.brainpoolP192r1,
    10: curves.P224,
    11: curves.brainpoolP224r1,
    12: curves.P256,
    13: curves.brainpoolP256r1,
    14: curves.brainpoolP320r1,
    15: curves.P384,
    16: curves.brainpoolP384r1,
    17: curves.brainpoolP512r1,
    18: curves.P521,
}
PASSWORD_MRZ = 0x01
INS_MSE = 0x22
INS_GENERAL_AUTHENTICATE = 0x86
CLA_CHAINING = 0x10  # every GENERAL AUTHENTICATE but the last is chained
DYNAMIC_DATA = 0x7C
PUBLIC_KEY = 0x7F49
TAG_OID = 0x06


@dataclass(frozen=True)
class PaceInfo:
    """One PACEInfo of EF.CardAccess that we can run: ECDH Generic Mapping on a known curve."""

    oid: bytes  # DER contents of the protocol OID
    parameter_id: int

    @property
    def algorithm(self) -> Algorithm:
        return CIPHERS[self.oid[-1]][0]

    @property
    def key_bits(self) -> int:
        return CIPHERS[self.oid[-1]][1]

    @property
    def curve(self) -> curves.Curve:
        return CURVES[self.parameter_id]

    def card_access(self) -> bytes:
        """EF.CardAccess offering just this variant (what the simulated chip is given)."""
        info = (
            tlv.encode(TAG_OID, self.oid)
            + tlv.encode(0x02, b"\x02")
            + tlv.encode(0x02, bytes((self.parameter_id,)))
        )
        return tlv.encode(0x31, tlv.encode(0x30, info))

    @classmethod
    def of(cls, algorithm: Algorithm, key_bits: int, parameter_id: int) -> PaceInfo:
        cipher = next(n for n, spec in CIPHERS.items() if spec == (algorithm, key_bits))
        return cls(ID_PACE + bytes((ECDH_GM, cipher)), parameter_id)


def supported_offers(card_access: bytes) -> list[PaceInfo]:
    """The PACEInfos of EF.CardAccess that we can run, in the chip's order; ``ValueError`` if malformed."""
    offers = []
    for tag, info in tlv.children(tlv.unwrap(card_access, 0x31)):
        if tag != 0x30:
            continue
        fields = list(tlv.children(info))
        if len(fields) < 3 or fields[0][0] != TAG_OID or fields[1][0] != 0x02 or fields[2][0] != 0x02:
            continue  # another kind of SecurityInfo, or a PACEInfo without a standardized parameter id
        oid, version, parameter = (
            fields[0][1],
            int.from_bytes(fields[1][1], "big"),
            int.from_bytes(fields[2][1], "big"),
        )
        if (
            oid[: len(ID_PACE)] == ID_PACE
            and len(oid) == len(ID_PACE) + 2
            and oid[-2] == ECDH_GM
            and oid[-1] in CIPHERS
            and version == 2
            and parameter in CURVES
        ):
            offers.append(PaceInfo(oid, parameter))
    return offers


def password_key(password: str, info: PaceInfo) -> bytes:
    """Kπ: the password (MRZ information) hashed with SHA-1, through the KDF with counter 3."""
    return kdf(
        hashlib.sha1(password.encode("ascii")).digest(), KEY_PACE_PASSWORD, info.algorithm, info.key_bits
    )


def _nonce_cipher(info: PaceInfo, key: bytes, data: bytes, *, decrypt: bool) -> bytes:
    if info.algorithm == "3DES":
        return des3_cbc(key, data, decrypt=decrypt)
    return aes_cbc(key, bytes(16), data, decrypt=decrypt)


def _size(curve: curves.Curve) -> int:
    return (curve.p.bit_length() + 7) // 8


def encode_point(point: Point, curve: curves.Curve) -> bytes:
    n = _size(curve)
    return b"\x04" + point.x.to_bytes(n, "big") + point.y.to_bytes(n, "big")


def decode_point(data: bytes, curve: curves.Curve) -> Point:
    n = _size(curve)
    if len(data) != 1 + 2 * n or data[0] != 0x04:
        raise AccessDeniedError("PACE: public key is not an uncompressed point of the curve")
    try:
        return Point(int.from_bytes(data[1 : 1 + n], "big"), int.from_bytes(data[1 + n :], "big"), curve)
    except ValueError:
        raise AccessDeniedError("PACE: public key is not on the curve") from None


def _scalar(curve: curves.Curve, rng: Random) -> int:
    return int.from_bytes(rng((curve.q.bit_length() + 7) // 8 + 8), "big") % (curve.q - 1) + 1


def _token(info: PaceInfo, keys: SessionCipher, point: Point) -> bytes:
    """The authentication token: MAC over the other side's public key as a public-key data object."""
    encoded = tlv.encode(
        PUBLIC_KEY, tlv.encode(TAG_OID, info.oid) + tlv.encode(0x86, encode_point(point, info.curve))
    )
    # Retail MAC needs the data padded; CMAC pads by itself.
    return keys.mac(pad(encoded, 8) if info.algorithm == "3DES" else encoded)


def _session_keys(info: PaceInfo, secret_point: Point) -> SessionCipher:
    shared = secret_point.x.to_bytes(_size(info.curve), "big")
    return SessionCipher.derive(shared, info.algorithm, info.key_bits)


def _new_session(keys: SessionCipher) -> SecureMessaging:
    return SecureMessaging(keys, 0)  # PACE starts the send-sequence counter at zero


def _step(transmit: Transmit, tag: int, value: bytes, answer_tag: int, *, last: bool = False) -> bytes:
    data = tlv.encode(DYNAMIC_DATA, tlv.encode(tag, value) if tag else b"")
    answer = transmit(Command(0x00 if last else CLA_CHAINING, INS_GENERAL_AUTHENTICATE, 0, 0, data, ne=256))
    if not answer.ok:
        if last:
            raise AccessDeniedError(
                f"PACE mutual authentication refused (status {answer.sw:04X}; wrong MRZ?)"
            )
        raise StatusError("PACE GENERAL AUTHENTICATE", answer.sw)
    try:
        return tlv.parse(tlv.unwrap(answer.data, DYNAMIC_DATA))[answer_tag]
    except (ValueError, KeyError):
        raise StatusError("PACE GENERAL AUTHENTICATE: malformed answer", answer.sw) from None


def set_at_data(info: PaceInfo) -> bytes:
    return (
        tlv.encode(0x80, info.oid)
        + tlv.encode(0x83, bytes((PASSWORD_MRZ,)))
        + tlv.encode(0x84, bytes((info.parameter_id,)))
    )


def authenticate(
    transmit: Transmit, info: PaceInfo, password: str, rng: Random = os.urandom
) -> SecureMessaging:
    """Run PACE as the reader; the secure-messaging session it opens.

    :class:`StatusError` when the chip refuses this variant (try another, or BAC);
    :class:`AccessDeniedError` when the password does not open the chip.
    """
    selected = transmit(Command(0x00, INS_MSE, 0xC1, 0xA4, set_at_data(info)))
    if not selected.ok:
        raise StatusError("PACE MSE:Set AT", selected.sw)
    curve = info.curve
    nonce = int.from_bytes(
        _nonce_cipher(info, password_key(password, info), _step(transmit, 0, b"", 0x80), decrypt=True), "big"
    )

    map_key = _scalar(curve, rng)
    chip_map = decode_point(_step(transmit, 0x81, encode_point(map_key * curve.G, curve), 0x82), curve)
    generator = nonce * curve.G + map_key * chip_map

    own_key = _scalar(curve, rng)
    own_public = own_key * generator
    chip_public = decode_point(_step(transmit, 0x83, encode_point(own_public, curve), 0x84), curve)
    if chip_public == own_public:
        raise AccessDeniedError("PACE: the chip echoed our ephemeral key")
    keys = _session_keys(info, own_key * chip_public)

    chip_token = _step(transmit, 0x85, _token(info, keys, chip_public), 0x86, last=True)
    if not hmac.compare_digest(chip_token, _token(info, keys, own_public)):
        raise AccessDeniedError("PACE: the chip's authentication token does not verify")
    return _new_session(keys)


class PaceChip:
    """The chip's half of PACE: MSE:Set AT chooses the variant, four GENERAL AUTHENTICATE steps run it."""

    def __init__(self, offers: list[PaceInfo], password: str, rng: Random = os.urandom) -> None:
        self._offers = offers
        self._password = password
        self._rng = rng
        self._info: PaceInfo | None = None
        self._step = 0
        self._nonce = 0
        self._generator: Point | None = None
        self._key = 0
        self._public: Point | None = None
        self._reader_public: Point | None = None
        self._keys: SessionCipher | None = None

    def set_at(self, data: bytes) -> None:
        found = tlv.parse(data)
        wanted = found.get(0x84)
        self._info = next(
            (
                o
                for o in self._offers
                if o.oid == found.get(0x80) and (wanted is None or o.parameter_id == wanted[0])
            ),
            None,
        )
        if self._info is None or found.get(0x83) != bytes((PASSWORD_MRZ,)):
            raise ValueError("PACE variant or password not offered")
        self._step = 0

    def general_authenticate(self, data: bytes) -> tuple[bytes, SecureMessaging | None]:
        """The answer's 7C contents, and the session once mutual authentication succeeded.

        :class:`AccessDeniedError` for a wrong token (wrong password), ``ValueError`` out of order.
        """
        info = self._info
        if info is None:
            raise ValueError("GENERAL AUTHENTICATE before MSE:Set AT")
        objects = tlv.parse(tlv.unwrap(data, DYNAMIC_DATA))
        curve, step = info.curve, self._step
        self._step += 1
        if step == 0:
            plain = self._rng(8 if info.algorithm == "3DES" else 16)
            self._nonce = int.from_bytes(plain, "big")
            return self._answer(
                0x80, _nonce_cipher(info, password_key(self._password, info), plain, decrypt=False)
            ), None
        if step == 1:
            key = _scalar(curve, self._rng)
            self._generator = self._nonce * curve.G + key * decode_point(objects[0x81], curve)
            return self._answer(0x82, encode_point(key * curve.G, curve)), None
        if step == 2 and self._generator is not None:
            self._key = _scalar(curve, self._rng)
            self._public = self._key * self._generator
            self._reader_public = decode_point(objects[0x83], curve)
            self._keys = _session_keys(info, self._key * self._reader_public)
            return self._answer(0x84, encode_point(self._public, curve)), None
        if step == 3 and self._keys is not None and self._public and self._reader_public:
            self._info = None  # one run per MSE:Set AT
            if not hmac.compare_digest(objects.get(0x85, b""), _token(info, self._keys, self._public)):
                raise AccessDeniedError("PACE: reader token does not verify")
            return self._answer(0x86, _token(info, self._keys, self._reader_public)), _new_session(self._keys)
        raise ValueError("GENERAL AUTHENTICATE out of order")

    @staticmethod
    def _answer(tag: int, value: bytes) -> bytes:
        return tlv.encode(DYNAMIC_DATA, tlv.encode(tag, value))
