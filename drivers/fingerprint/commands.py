"""The R30x / AS608 instruction set: codes, parameter layouts and acknowledgement layouts. Pure.

A command payload is the instruction code followed by its parameters; an acknowledgement payload
is a confirmation code followed by the instruction's reply fields. One table describes both sides,
so the driver and the simulator cannot drift apart. Facts from the ZhianTec datasheets as used by
public clients (pyfingerprint, the Adafruit fingerprint library).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from drivers.fingerprint.protocol import ProtocolError

DEFAULT_PASSWORD = 0x00000000
CHAR_BUFFERS = (1, 2)
TEMPLATE_SIZE = 512  # bytes in the characteristics file (one character buffer) of these modules
PACKET_SIZES = (32, 64, 128, 256)  # ReadSysPara reports the index into this tuple
BAUD_UNIT = 9600  # ReadSysPara reports the baud rate as a multiple of this
INDEX_PAGE_SLOTS = 256  # template slots per ReadIndexTable page (32 bytes, one bit each)
INDEX_PAGES = 4


class Instruction(IntEnum):
    GEN_IMG = 0x01
    IMG2TZ = 0x02
    MATCH = 0x03
    SEARCH = 0x04
    REG_MODEL = 0x05
    STORE = 0x06
    LOAD_CHAR = 0x07
    UP_CHAR = 0x08
    DOWN_CHAR = 0x09
    DELETE_CHAR = 0x0C
    EMPTY = 0x0D
    READ_SYS_PARA = 0x0F
    VFY_PWD = 0x13
    TEMPLATE_NUM = 0x1D
    READ_INDEX_TABLE = 0x1F


class Confirmation(IntEnum):
    OK = 0x00
    PACKET_RECEIVE_ERROR = 0x01
    NO_FINGER = 0x02
    IMAGE_FAIL = 0x03
    IMAGE_MESSY = 0x06
    TOO_FEW_FEATURES = 0x07
    NO_MATCH = 0x08
    NOT_FOUND = 0x09
    MERGE_FAIL = 0x0A
    BAD_LOCATION = 0x0B
    TEMPLATE_READ_ERROR = 0x0C
    UPLOAD_FEATURE_FAIL = 0x0D
    DATA_RECEIVE_FAIL = 0x0E
    UPLOAD_IMAGE_FAIL = 0x0F
    DELETE_FAIL = 0x10
    CLEAR_FAIL = 0x11
    WRONG_PASSWORD = 0x13
    NO_VALID_IMAGE = 0x15
    FLASH_ERROR = 0x18
    UNDEFINED_ERROR = 0x19
    INVALID_REGISTER = 0x1A
    REGISTER_CONFIG_ERROR = 0x1B
    BAD_NOTEPAD_PAGE = 0x1C
    PORT_ERROR = 0x1D
    ADDRESS_ERROR = 0x20
    PASSWORD_REQUIRED = 0x21


DESCRIPTIONS: dict[Confirmation, str] = {
    Confirmation.OK: "ok",
    Confirmation.PACKET_RECEIVE_ERROR: "the module did not receive the packet intact",
    Confirmation.NO_FINGER: "no finger on the sensor",
    Confirmation.IMAGE_FAIL: "the finger image could not be captured",
    Confirmation.IMAGE_MESSY: "the finger image is too messy to extract features",
    Confirmation.TOO_FEW_FEATURES: "the finger image has too few feature points",
    Confirmation.NO_MATCH: "the characteristics do not match",
    Confirmation.NOT_FOUND: "no matching template in the library",
    Confirmation.MERGE_FAIL: "the characteristics could not be merged into a template",
    Confirmation.BAD_LOCATION: "template slot outside the library",
    Confirmation.TEMPLATE_READ_ERROR: "the template could not be read or is invalid",
    Confirmation.UPLOAD_FEATURE_FAIL: "the characteristics could not be uploaded",
    Confirmation.DATA_RECEIVE_FAIL: "the module cannot receive the following data packets",
    Confirmation.UPLOAD_IMAGE_FAIL: "the image could not be uploaded",
    Confirmation.DELETE_FAIL: "the template could not be deleted",
    Confirmation.CLEAR_FAIL: "the library could not be cleared",
    Confirmation.WRONG_PASSWORD: "wrong password",
    Confirmation.NO_VALID_IMAGE: "no valid finger image to work on",
    Confirmation.FLASH_ERROR: "error writing the flash memory",
    Confirmation.UNDEFINED_ERROR: "undefined module error",
    Confirmation.INVALID_REGISTER: "invalid register number",
    Confirmation.REGISTER_CONFIG_ERROR: "invalid register configuration",
    Confirmation.BAD_NOTEPAD_PAGE: "invalid notepad page",
    Confirmation.PORT_ERROR: "the module's communication port failed",
    Confirmation.ADDRESS_ERROR: "wrong module address",
    Confirmation.PASSWORD_REQUIRED: "the password must be verified first",
}


def describe(code: int) -> str:
    try:
        return DESCRIPTIONS[Confirmation(code)]
    except ValueError:
        return "unknown confirmation code"


@dataclass(frozen=True)
class Layout:
    """``struct`` formats (big-endian, without the leading code byte) of one instruction."""

    parameters: str = ""
    reply: str = ""


LAYOUTS: dict[Instruction, Layout] = {
    Instruction.GEN_IMG: Layout(),
    Instruction.IMG2TZ: Layout("B"),  # buffer
    Instruction.MATCH: Layout(reply="H"),  # score
    Instruction.SEARCH: Layout("BHH", "HH"),  # buffer, first slot, slot count -> slot, score
    Instruction.REG_MODEL: Layout(),
    Instruction.STORE: Layout("BH"),  # buffer, slot
    Instruction.LOAD_CHAR: Layout("BH"),  # buffer, slot
    Instruction.UP_CHAR: Layout("B"),  # buffer
    Instruction.DOWN_CHAR: Layout("B"),  # buffer
    Instruction.DELETE_CHAR: Layout("HH"),  # first slot, count
    Instruction.EMPTY: Layout(),
    # status register, system id, capacity, security level, address, packet size index, baud / 9600
    Instruction.READ_SYS_PARA: Layout(reply="HHHHIHH"),
    Instruction.VFY_PWD: Layout("I"),  # password
    Instruction.TEMPLATE_NUM: Layout(reply="H"),  # stored templates
    Instruction.READ_INDEX_TABLE: Layout("B", f"{INDEX_PAGE_SLOTS // 8}s"),  # page -> bitmap
}


@dataclass(frozen=True)
class Command:
    instruction: Instruction
    parameters: tuple[int, ...]


@dataclass(frozen=True)
class Reply:
    code: int
    fields: tuple[int | bytes, ...]

    @property
    def ok(self) -> bool:
        return self.code == Confirmation.OK


def encode_command(instruction: Instruction, *parameters: int) -> bytes:
    return bytes((instruction,)) + _pack(LAYOUTS[instruction].parameters, parameters)


def decode_command(payload: bytes) -> Command:
    if not payload:
        raise ProtocolError("empty command")
    try:
        instruction = Instruction(payload[0])
    except ValueError:
        raise ProtocolError(f"unsupported instruction 0x{payload[0]:02X}") from None
    parameters = _unpack(LAYOUTS[instruction].parameters, payload[1:], instruction.name)
    return Command(instruction, tuple(int(p) for p in parameters))


def encode_reply(instruction: Instruction | None, code: int, *fields: int | bytes) -> bytes:
    """The acknowledgement payload. A failure without ``fields`` carries zeros in their place,
    as modules keep the acknowledgement length fixed per instruction; ``instruction`` is ``None``
    for a command that could not be decoded (the reply then has no fields)."""
    layout = "" if instruction is None else LAYOUTS[instruction].reply
    if code != Confirmation.OK and not fields:
        return bytes((code,)) + bytes(struct.calcsize(">" + layout))
    return bytes((code,)) + _pack(layout, fields)


def decode_reply(instruction: Instruction, payload: bytes) -> Reply:
    """A success must carry exactly the instruction's fields (a reply of another instruction is
    caught this way). A failure carries them (zero-filled, meaningless) or nothing at all."""
    if not payload:
        raise ProtocolError("empty acknowledgement")
    code, rest = payload[0], payload[1:]
    layout = LAYOUTS[instruction].reply
    fields = _unpack(layout, rest, instruction.name) if code == Confirmation.OK or rest else ()
    return Reply(code, fields if code == Confirmation.OK else ())


@dataclass(frozen=True)
class SystemParameters:
    status: int
    system_id: int
    capacity: int
    security_level: int
    address: int
    packet_size: int
    baudrate: int

    def encode_fields(self) -> tuple[int, ...]:
        return (
            self.status,
            self.system_id,
            self.capacity,
            self.security_level,
            self.address,
            PACKET_SIZES.index(self.packet_size),
            self.baudrate // BAUD_UNIT,
        )

    @classmethod
    def decode_fields(cls, fields: tuple[int | bytes, ...]) -> SystemParameters:
        status, system_id, capacity, level, address, size_index, baud = (int(f) for f in fields)
        if size_index >= len(PACKET_SIZES):
            raise ProtocolError(f"unknown packet size index {size_index}")
        return cls(status, system_id, capacity, level, address, PACKET_SIZES[size_index], baud * BAUD_UNIT)


def encode_index_page(page: int, used_slots: Iterable[int]) -> bytes:
    """One ReadIndexTable page: bit ``n % 8`` of byte ``n // 8`` marks slot ``page * 256 + n`` used."""
    bitmap = bytearray(INDEX_PAGE_SLOTS // 8)
    first = page * INDEX_PAGE_SLOTS
    for slot in used_slots:
        if first <= slot < first + INDEX_PAGE_SLOTS:
            offset = slot - first
            bitmap[offset // 8] |= 1 << (offset % 8)
    return bytes(bitmap)


def decode_index_page(page: int, bitmap: bytes) -> frozenset[int]:
    first = page * INDEX_PAGE_SLOTS
    return frozenset(
        first + byte_no * 8 + bit
        for byte_no, byte in enumerate(bitmap)
        for bit in range(8)
        if byte & (1 << bit)
    )


def _pack(layout: str, values: tuple[int | bytes, ...]) -> bytes:
    try:
        return struct.pack(">" + layout, *values)
    except struct.error as exc:
        raise ValueError(f"fields {layout!r}: {exc}") from None


def _unpack(layout: str, data: bytes, what: str) -> tuple[int | bytes, ...]:
    try:
        return struct.unpack(">" + layout, data)
    except struct.error:
        raise ProtocolError(
            f"{what}: {len(data)} byte(s) where {struct.calcsize('>' + layout)} were expected"
        ) from None
