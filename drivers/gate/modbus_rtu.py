"""Modbus RTU framing for the gate's relay/IO module: frame building, checking and a resynchronising
stream parser. No I/O.

The PDU classes and the CRC come from pymodbus, the same code its RTU client runs, so the real
backend and the slave simulator speak one implementation of the protocol. pymodbus's own framer
drops its whole buffer on a bad CRC; a slave on a noisy RS-485 bus does better to slide forward
byte by byte, so the hunting for frame starts lives here.

An RTU frame is ``unit (1) | function (1) | data | CRC-16 (2, low byte first)``, 4 to 256 bytes;
its length follows from the function code (and, for some, a byte count inside the frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU

MIN_ADU = 4
MAX_ADU = 256
EXCEPTION_FLAG = 0x80
COIL_ON = 0xFF00
COIL_OFF = 0x0000


class FrameStatus(Enum):
    VALID = "valid"
    INCOMPLETE = "incomplete"  # could still become a frame when more bytes arrive
    INVALID = "invalid"  # no frame starts here (unknown function, bad length or bad CRC)


@dataclass(frozen=True)
class RtuFrame:
    unit: int
    pdu: ModbusPDU
    raw: bytes


def crc16(data: bytes) -> int:
    """The Modbus CRC-16, as the big-endian value of the two bytes that end a frame."""
    return FramerRTU.compute_CRC(data)


def build_frame(pdu: ModbusPDU, unit: int) -> bytes:
    pdu.dev_id = unit
    return FramerRTU(DecodePDU(is_server=False)).buildFrame(pdu)


class RtuCodec:
    """Frame checks for one side of the link: a slave decodes requests, a master responses."""

    def __init__(self, *, requests: bool) -> None:
        self.requests = requests
        self._decoder = DecodePDU(is_server=requests)

    def status(self, data: bytes) -> tuple[FrameStatus, int]:
        """Whether ``data`` starts with a frame, and the frame's length when it does."""
        if len(data) < MIN_ADU:
            return FrameStatus.INCOMPLETE, 0
        if self.requests and data[1] & EXCEPTION_FLAG:
            return FrameStatus.INVALID, 0
        try:
            pdu_class = self._decoder.lookupPduClass(data)
            size = pdu_class.calculateRtuFrameSize(data) if pdu_class else -1
        except Exception:  # pymodbus's length rules raise assorted errors on junk; junk is not a frame
            return FrameStatus.INVALID, 0
        if size == 0:
            return FrameStatus.INCOMPLETE, 0
        if not MIN_ADU <= size <= MAX_ADU:
            return FrameStatus.INVALID, 0
        if len(data) < size:
            return FrameStatus.INCOMPLETE, size
        crc = int.from_bytes(data[size - 2 : size], "big")
        return (FrameStatus.VALID if crc16(data[: size - 2]) == crc else FrameStatus.INVALID), size

    def decode(self, adu: bytes) -> RtuFrame | None:
        """The frame in a complete, CRC-checked ADU; ``None`` when its PDU does not decode."""
        try:
            pdu = self._decoder.decode(adu[1:-2])
        except Exception:  # as in status(): a malformed PDU is junk, never a crash
            return None
        if pdu is None:
            return None
        pdu.dev_id = adu[0]
        return RtuFrame(unit=adu[0], pdu=pdu, raw=bytes(adu))


class RtuStreamParser:
    """Bytes in, frames out; garbage is skipped and counted, never raised."""

    def __init__(self, *, requests: bool) -> None:
        self.codec = RtuCodec(requests=requests)
        self._buffer = bytearray()
        self.frames = 0
        self.dropped_bytes = 0

    def feed(self, data: bytes) -> list[RtuFrame]:
        self._buffer += data
        frames: list[RtuFrame] = []
        while (frame := self._next_frame()) is not None:
            frames.append(frame)
        return frames

    def gap(self) -> int:
        """The line went quiet: a partial frame will never be completed. Returns the bytes dropped."""
        dropped = len(self._buffer)
        self._drop(dropped)
        return dropped

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def _next_frame(self) -> RtuFrame | None:
        # A later complete frame proves that an earlier incomplete candidate was junk, so the scan
        # goes past incomplete candidates and only keeps them when nothing complete follows.
        first_incomplete: int | None = None
        data = bytes(self._buffer)
        for start in range(len(data)):
            status, size = self.codec.status(data[start:])
            if status is FrameStatus.INCOMPLETE:
                if first_incomplete is None:
                    first_incomplete = start
                continue
            if status is FrameStatus.VALID and (frame := self.codec.decode(data[start : start + size])):
                self._drop(start)
                del self._buffer[:size]
                self.frames += 1
                return frame
        self._drop(len(data) if first_incomplete is None else first_incomplete)
        return None

    def _drop(self, count: int) -> None:
        if count:
            del self._buffer[:count]
            self.dropped_bytes += count
