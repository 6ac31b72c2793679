"""A simulated ePassport chip: ISO 7816-4 commands in, responses out, over the shared protocol code.

It serves its files exactly as given (tests tamper with them), opens with BAC using the MRZ of its
DG1, with PACE when it has an EF.CardAccess, and signs Active Authentication challenges with the
key it is given. Faults for tests: a response MAC corrupted at a chosen secure response.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from drivers.chip import atr, files, pace, tlv
from drivers.chip.apdu import (
    SW_AUTH_FAILED,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_END_OF_FILE,
    SW_FILE_NOT_FOUND,
    SW_INS_NOT_SUPPORTED,
    SW_OK,
    SW_SECURITY_NOT_SATISFIED,
    SW_SM_DATA_INCORRECT,
    SW_WRONG_DATA,
    SW_WRONG_P1P2,
    Command,
    Response,
)
from drivers.chip.bac import INS_EXTERNAL_AUTHENTICATE, INS_GET_CHALLENGE, BacChip
from drivers.chip.errors import AccessDeniedError, SecureMessagingError
from drivers.chip.mrz_key import key_from_dg1, mrz_information
from drivers.chip.reading import (
    DO_DISCRETIONARY,
    DO_OFFSET,
    INS_INTERNAL_AUTHENTICATE,
    INS_READ_BINARY,
    INS_READ_BINARY_ODD,
    INS_SELECT,
    ODD_WRAPPING,
)
from drivers.chip.secure_messaging import SM_CLA, SecureMessaging

log = logging.getLogger(__name__)

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
TRAILER_SHA1 = 0xBC
HEADER_PARTIAL_RECOVERY = 0x6A


def sign_iso9796_2(key: rsa.RSAPrivateKey, challenge: bytes, rng: Callable[[int], bytes]) -> bytes:
    """ISO/IEC 9796-2 digital signature scheme 1, partial recovery, SHA-1 (ICAO 9303-11 §6.1).

    The representative is 6A ‖ M1 ‖ SHA-1(M1 ‖ challenge) ‖ BC; M1 is random filler the verifier
    recovers, the challenge is the non-recoverable part. Raw RSA on the private numbers.
    """
    size = (key.key_size + 7) // 8
    m1 = rng(size - hashlib.sha1().digest_size - 2)
    representative = (
        bytes((HEADER_PARTIAL_RECOVERY,))
        + m1
        + hashlib.sha1(m1 + challenge).digest()
        + bytes((TRAILER_SHA1,))
    )
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    return pow(int.from_bytes(representative, "big"), numbers.d, n).to_bytes(size, "big")


def sign_ecdsa_plain(key: ec.EllipticCurvePrivateKey, challenge: bytes) -> bytes:
    """ECDSA over the challenge, r ‖ s (BSI TR-03111 plain format); the hash grows with the curve."""
    bits = key.curve.key_size
    algorithm = hashes.SHA256() if bits <= 256 else hashes.SHA384() if bits <= 384 else hashes.SHA512()
    r, s = decode_dss_signature(key.sign(challenge, ec.ECDSA(algorithm)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


class SimulatedPassport:
    """The chip; :meth:`process` takes one command APDU and returns the response APDU."""

    def __init__(
        self,
        contents: Mapping[str, bytes],
        *,
        aa_key: SigningKey | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        unknown = set(contents) - set(files.FILES)
        if unknown:
            raise ValueError(f"not ePassport files: {sorted(unknown)}")
        self.contents = dict(contents)
        self.aa_key = aa_key
        self._rng = rng
        password = mrz_information(key_from_dg1(self.contents["DG1"]))
        self._bac = BacChip(password, rng)
        offers = (
            pace.supported_offers(self.contents[files.CARD_ACCESS])
            if files.CARD_ACCESS in self.contents
            else []
        )
        self._pace = pace.PaceChip(offers, password, rng) if offers else None
        self.atr = atr.build(atr.PASSPORT_HISTORICAL)
        # Fault injection: corrupt the MAC of the n-th secure response from now (1 = the next one).
        self.corrupt_mac_in: int | None = None
        self.commands = 0
        self.reset()

    def reset(self) -> None:
        """Power cycle: back to the master file, no session."""
        self._sm: SecureMessaging | None = None
        self._pending: SecureMessaging | None = None
        self._in_application = False
        self._selected: str | None = None

    def process(self, raw: bytes) -> bytes:
        self.commands += 1
        try:
            command = Command.decode(raw)
        except ValueError:
            return Response.status(SW_WRONG_DATA).encode()
        if self._sm is not None and command.cla & SM_CLA == SM_CLA:
            sm = self._sm
            try:
                plain = sm.unwrap(command)
            except SecureMessagingError:
                self._sm = None  # a broken SM command ends the session (ICAO 9303-11 §9.8.6)
                return Response.status(SW_SM_DATA_INCORRECT).encode()
            response = sm.wrap(self._handle(plain, secure=True))
            return self._maybe_corrupt(response).encode()
        if command.cla & SM_CLA:
            return Response.status(SW_SECURITY_NOT_SATISFIED).encode()
        self._sm = None  # a plain command after access control drops the session keys
        response = self._handle(command, secure=False)
        # Access control answers in the clear; its session protects what comes after.
        self._sm, self._pending = self._pending, None
        return response.encode()

    def _maybe_corrupt(self, response: Response) -> Response:
        if self.corrupt_mac_in is None:
            return response
        self.corrupt_mac_in -= 1
        if self.corrupt_mac_in > 0:
            return response
        self.corrupt_mac_in = None
        data = bytearray(response.data)
        data[-1] ^= 0x01  # last byte of DO'8E'
        return Response(bytes(data), response.sw)

    def _handle(self, command: Command, *, secure: bool) -> Response:
        if command.cla & ~(SM_CLA | 0x10) & 0xFF:
            return Response.status(SW_CLA_NOT_SUPPORTED)
        handlers = {
            INS_SELECT: self._select,
            INS_READ_BINARY: self._read_binary,
            INS_READ_BINARY_ODD: self._read_binary,
            INS_GET_CHALLENGE: self._get_challenge,
            INS_EXTERNAL_AUTHENTICATE: self._external_authenticate,
            pace.INS_MSE: self._mse,
            pace.INS_GENERAL_AUTHENTICATE: self._general_authenticate,
            INS_INTERNAL_AUTHENTICATE: self._internal_authenticate,
        }
        handler = handlers.get(command.ins)
        if handler is None:
            return Response.status(SW_INS_NOT_SUPPORTED)
        return handler(command, secure)

    def _visible(self, name: str | None, secure: bool) -> bool:
        """Whether ``name`` exists where we are and the session may read it."""
        if name is None or name not in self.contents:
            return False
        if name == files.CARD_ACCESS:
            return not self._in_application
        return self._in_application and secure

    def _select(self, command: Command, secure: bool) -> Response:
        if command.p1 == 0x04:
            if command.data != files.LDS_AID:
                return Response.status(SW_FILE_NOT_FOUND)
            self._in_application, self._selected = True, None
            return Response.status(SW_OK)
        if command.p1 in (0x00, 0x02) and len(command.data) == 2:
            fid = int.from_bytes(command.data, "big")
            if fid == files.MASTER_FILE:
                self._in_application, self._selected = False, None
                return Response.status(SW_OK)
            name = files.name_of(fid)
            if name is not None and name in self.contents and not self._visible(name, secure):
                return Response.status(SW_SECURITY_NOT_SATISFIED)
            if not self._visible(name, secure):
                return Response.status(SW_FILE_NOT_FOUND)
            self._selected = name
            return Response.status(SW_OK)
        return Response.status(SW_WRONG_P1P2)

    def _read_binary(self, command: Command, secure: bool) -> Response:
        if command.ins == INS_READ_BINARY_ODD:
            try:
                offset = int.from_bytes(tlv.unwrap(command.data, DO_OFFSET), "big")
            except ValueError:
                return Response.status(SW_WRONG_DATA)
        elif command.p1 & 0x80:
            name = next((n for n in self.contents if files.short_id(n) == command.p1 & 0x1F), None)
            if name is not None and not self._visible(name, secure):
                return Response.status(SW_SECURITY_NOT_SATISFIED)
            if name is None:
                return Response.status(SW_FILE_NOT_FOUND)
            self._selected, offset = name, command.p2
        else:
            offset = ((command.p1 & 0x7F) << 8) | command.p2
        if self._selected is None or not self._visible(self._selected, secure):
            return Response.status(SW_CONDITIONS_NOT_SATISFIED)
        content = self.contents[self._selected]
        if offset >= len(content):
            return Response.status(SW_WRONG_P1P2)
        ne = command.ne or 256
        if command.ins == INS_READ_BINARY_ODD:
            chunk = content[offset : offset + max(0, ne - ODD_WRAPPING)]
            return Response(tlv.encode(DO_DISCRETIONARY, chunk), SW_OK)
        chunk = content[offset : offset + ne]
        return Response(chunk, SW_OK if len(chunk) == ne else SW_END_OF_FILE)

    def _get_challenge(self, command: Command, secure: bool) -> Response:
        return Response(self._bac.get_challenge(), SW_OK)

    def _external_authenticate(self, command: Command, secure: bool) -> Response:
        try:
            answer, session = self._bac.external_authenticate(command.data)
        except AccessDeniedError:
            return Response.status(SW_AUTH_FAILED)
        self._pending = session
        return Response(answer, SW_OK)

    def _mse(self, command: Command, secure: bool) -> Response:
        if self._pace is None or (command.p1, command.p2) != (0xC1, 0xA4):
            return Response.status(SW_WRONG_P1P2 if self._pace else SW_INS_NOT_SUPPORTED)
        try:
            self._pace.set_at(command.data)
        except ValueError:
            return Response.status(SW_WRONG_DATA)
        return Response.status(SW_OK)

    def _general_authenticate(self, command: Command, secure: bool) -> Response:
        if self._pace is None:
            return Response.status(SW_INS_NOT_SUPPORTED)
        try:
            answer, session = self._pace.general_authenticate(command.data)
        except AccessDeniedError:
            return Response.status(SW_AUTH_FAILED)
        except (ValueError, KeyError):
            return Response.status(SW_CONDITIONS_NOT_SATISFIED)
        if session is not None:
            self._pending = session
        return Response(answer, SW_OK)

    def _internal_authenticate(self, command: Command, secure: bool) -> Response:
        if self.aa_key is None:
            return Response.status(SW_INS_NOT_SUPPORTED)
        if not secure:
            return Response.status(SW_SECURITY_NOT_SATISFIED)
        if isinstance(self.aa_key, rsa.RSAPrivateKey):
            return Response(sign_iso9796_2(self.aa_key, command.data, self._rng), SW_OK)
        return Response(sign_ecdsa_plain(self.aa_key, command.data), SW_OK)
