"""ISO/IEC 7816-4 secure messaging as ICAO 9303-11 §9.8 profiles it, for both ends of the channel.

A command carries DO'87' (encrypted data, or DO'85' for an odd INS), DO'97' (Le) and DO'8E' (MAC);
a response DO'87', DO'99' (status) and DO'8E'. The send-sequence counter goes up once before each
command and once before each response, on both sides, and is the first block of every MAC input.
Every response's MAC is checked; the first failure closes the channel for good, because a chip that
answered with a wrong MAC is either not the chip that did access control or being tampered with.
"""

from __future__ import annotations

import hmac

from drivers.chip import tlv
from drivers.chip.apdu import EXTENDED_MAX_NE, SHORT_MAX_NE, Command, Response
from drivers.chip.cipher import MAC_SIZE, SessionCipher, pad, unpad
from drivers.chip.errors import SecureMessagingError

SM_CLA = 0x0C
DO_ENCRYPTED = 0x87
DO_ENCRYPTED_ODD = 0x85
DO_LE = 0x97
DO_STATUS = 0x99
DO_MAC = 0x8E
PADDING_INDICATOR = b"\x01"
# The longest plain Le whose protected response still fits a short APDU (256 bytes): DO'87' with
# padding and its indicator, DO'99', DO'8E'. 0xDF is what readers commonly use.
SHORT_PLAIN_MAX_NE = 0xDF


def _encode_le(ne: int) -> bytes:
    if ne <= SHORT_MAX_NE:
        return bytes((ne % SHORT_MAX_NE,))
    return (ne % EXTENDED_MAX_NE).to_bytes(2, "big")


def _decode_le(value: bytes) -> int:
    n = int.from_bytes(value, "big")
    return n or (SHORT_MAX_NE if len(value) == 1 else EXTENDED_MAX_NE)


class SecureMessaging:
    """One secure-messaging session: the reader uses protect/unprotect, the chip unwrap/wrap."""

    def __init__(self, cipher: SessionCipher, ssc: int) -> None:
        self.cipher = cipher
        self.ssc = ssc
        self.closed = False

    @property
    def _block(self) -> int:
        return self.cipher.block

    def _next_ssc(self) -> bytes:
        if self.closed:
            raise SecureMessagingError("secure messaging session already ended")
        self.ssc = (self.ssc + 1) % (1 << (8 * self._block))
        return self.ssc.to_bytes(self._block, "big")

    def _mac(self, ssc: bytes, data: bytes) -> bytes:
        return self.cipher.mac(pad(ssc + data, self._block))

    def _encrypted_object(self, ssc: bytes, tag: int, data: bytes) -> bytes:
        body = self.cipher.encrypt(ssc, pad(data, self._block))
        return tlv.encode(tag, (PADDING_INDICATOR if tag == DO_ENCRYPTED else b"") + body)

    def _decrypt_object(self, ssc: bytes, tag: int, value: bytes) -> bytes:
        if tag == DO_ENCRYPTED:
            if value[:1] != PADDING_INDICATOR:
                raise ValueError("DO'87' without padding indicator 01")
            value = value[1:]
        if not value or len(value) % self._block:
            raise ValueError("encrypted data is not whole cipher blocks")
        return unpad(self.cipher.decrypt(ssc, value))

    def _fail(self, reason: str) -> SecureMessagingError:
        self.closed = True
        return SecureMessagingError(reason)

    # -- reader side ---------------------------------------------------------------------------

    def protect(self, command: Command) -> Command:
        ssc = self._next_ssc()
        cla = command.cla | SM_CLA
        header = pad(bytes((cla, command.ins, command.p1, command.p2)), self._block)
        objects = b""
        if command.data:
            tag = DO_ENCRYPTED_ODD if command.ins & 1 else DO_ENCRYPTED
            objects += self._encrypted_object(ssc, tag, command.data)
        if command.ne is not None:
            objects += tlv.encode(DO_LE, _encode_le(command.ne))
        objects += tlv.encode(DO_MAC, self._mac(ssc, header + objects))
        long_answer = (command.ne or 0) > SHORT_PLAIN_MAX_NE
        ne = EXTENDED_MAX_NE if long_answer or len(objects) > 255 else SHORT_MAX_NE
        return Command(cla, command.ins, command.p1, command.p2, objects, ne)

    def unprotect(self, response: Response) -> Response:
        """The plain response; raises :class:`SecureMessagingError` (and ends the session) on any fault."""
        ssc = self._next_ssc()
        if not response.data:
            # A chip that detects an SM fault answers with a bare status and drops its session keys.
            raise self._fail(f"chip answered without secure messaging (status {response.sw:04X})")
        found, data = self._open(ssc, response.data, b"", "response")
        if DO_STATUS not in found or len(found[DO_STATUS]) != 2:
            raise self._fail("response without protected status")
        return Response(data, int.from_bytes(found[DO_STATUS], "big"))

    def _open(self, ssc: bytes, data: bytes, mac_prefix: bytes, what: str) -> tuple[dict[int, bytes], bytes]:
        """The data objects of a protected ``what`` (its MAC checked over ``mac_prefix`` and the
        objects before DO'8E') and its decrypted data; the session ends on any fault."""
        try:
            objects = list(tlv.children(data))
        except ValueError as exc:
            raise self._fail(f"malformed protected {what}: {exc}") from None
        if not objects or objects[-1][0] != DO_MAC or len(objects[-1][1]) != MAC_SIZE:
            raise self._fail(f"{what} without MAC")
        macced = data[: len(data) - 2 - MAC_SIZE]
        if not hmac.compare_digest(self._mac(ssc, mac_prefix + macced), objects[-1][1]):
            raise self._fail(f"{what} MAC does not verify")
        found = dict(objects[:-1])
        plain = b""
        for tag in (DO_ENCRYPTED, DO_ENCRYPTED_ODD):
            if tag in found:
                try:
                    plain = self._decrypt_object(ssc, tag, found[tag])
                except ValueError as exc:
                    raise self._fail(f"{what} data: {exc}") from None
        return found, plain

    # -- chip side -----------------------------------------------------------------------------

    def unwrap(self, command: Command) -> Command:
        """The plain command inside a protected one; raises :class:`SecureMessagingError` on any fault."""
        ssc = self._next_ssc()
        if command.cla & SM_CLA != SM_CLA:
            raise self._fail("command without secure messaging")
        found, data = self._open(ssc, command.data, pad(command.header, self._block), "command")
        ne = _decode_le(found[DO_LE]) if DO_LE in found else None
        return Command(command.cla & ~SM_CLA & 0xFF, command.ins, command.p1, command.p2, data, ne)

    def wrap(self, response: Response) -> Response:
        ssc = self._next_ssc()
        objects = self._encrypted_object(ssc, DO_ENCRYPTED, response.data) if response.data else b""
        objects += tlv.encode(DO_STATUS, response.sw.to_bytes(2, "big"))
        objects += tlv.encode(DO_MAC, self._mac(ssc, objects))
        return Response(objects, response.sw)
