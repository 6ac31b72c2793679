"""ISO/IEC 7816-4 command and response APDUs, short and extended length."""

from __future__ import annotations

from dataclasses import dataclass

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_AUTH_FAILED = 0x6300
SW_SM_DATA_MISSING = 0x6987
SW_SM_DATA_INCORRECT = 0x6988
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_FILE_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_WRONG_DATA = 0x6A80
SW_END_OF_FILE = 0x6282

SHORT_MAX_LC = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_NE = 65536


@dataclass(frozen=True)
class Command:
    """A command APDU. ``ne`` is the expected response length: None for none, 256/65536 for "all"."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int | None = None

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    @property
    def extended(self) -> bool:
        return len(self.data) > SHORT_MAX_LC or (self.ne or 0) > SHORT_MAX_NE

    def encode(self) -> bytes:
        out = bytearray(self.header)
        if self.extended:
            # One 00 byte opens the extended fields; Le follows Lc without a second marker.
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.ne is not None:
                le = 0 if self.ne == EXTENDED_MAX_NE else self.ne
                out += (b"" if self.data else b"\x00") + le.to_bytes(2, "big")
            return bytes(out)
        if self.data:
            out += bytes((len(self.data),)) + self.data
        if self.ne is not None:
            out.append(0 if self.ne == SHORT_MAX_NE else self.ne)
        return bytes(out)

    @classmethod
    def decode(cls, raw: bytes) -> Command:
        if len(raw) < 4:
            raise ValueError("APDU shorter than its header")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, ne=body[0] or SHORT_MAX_NE)
        if body[0] != 0:  # short Lc
            lc = body[0]
            data, rest = body[1 : 1 + lc], body[1 + lc :]
            if len(data) != lc or len(rest) > 1:
                raise ValueError("APDU length fields do not match its body")
            return cls(cla, ins, p1, p2, data, (rest[0] or SHORT_MAX_NE) if rest else None)
        if len(body) == 3:  # extended Le only
            return cls(cla, ins, p1, p2, ne=int.from_bytes(body[1:3], "big") or EXTENDED_MAX_NE)
        lc = int.from_bytes(body[1:3], "big")
        data, rest = body[3 : 3 + lc], body[3 + lc :]
        if len(data) != lc or len(rest) not in (0, 2):
            raise ValueError("extended APDU length fields do not match its body")
        ne = (int.from_bytes(rest, "big") or EXTENDED_MAX_NE) if rest else None
        return cls(cla, ins, p1, p2, data, ne)


@dataclass(frozen=True)
class Response:
    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def decode(cls, raw: bytes) -> Response:
        if len(raw) < 2:
            raise ValueError("response APDU shorter than its status word")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    @classmethod
    def status(cls, sw: int) -> Response:
        return cls(b"", sw)
