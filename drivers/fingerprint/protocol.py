"""Packet framing of the ZhianTec R30x / AS608 serial protocol. Pure: no I/O.

A packet on the wire::

    EF 01 | address (4) | kind (1) | length (2) | payload (length - 2) | checksum (2)

All numbers are big-endian; ``length`` counts the payload plus the checksum; the checksum is the sum
of the kind byte, both length bytes and the payload bytes, mod 65536. The start code is the only
synchronisation point, so the parser never trusts a header until the whole frame checks out: noise
on the line, a half-sent frame from before a reconnect or a bad checksum costs the bytes involved and
nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

START_CODE = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
HEADER_SIZE = 9  # start code, address, kind, length
CHECKSUM_SIZE = 2
# The largest data packet any module of the family can be configured for; every command and
# acknowledgement is far smaller. A header claiming more is noise, not a frame to wait for.
MAX_PAYLOAD = 256
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CHECKSUM_SIZE
# Largest data transfer (UpChar/DownChar) accepted: a few times the 512-byte characteristics file
# of these modules, so a runaway sender cannot make a receiver buffer without bound.
MAX_TRANSFER = 4096


class PacketKind(IntEnum):
    COMMAND = 0x01
    DATA = 0x02
    ACK = 0x07
    END_OF_DATA = 0x08


class ProtocolError(ValueError):
    """Bytes or a payload that do not form what the protocol allows."""


@dataclass(frozen=True)
class Packet:
    kind: PacketKind
    payload: bytes
    address: int = DEFAULT_ADDRESS

    @property
    def frame_size(self) -> int:
        return HEADER_SIZE + len(self.payload) + CHECKSUM_SIZE


def checksum(kind: int, payload: bytes) -> int:
    length = len(payload) + CHECKSUM_SIZE
    return (kind + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


def encode(packet: Packet) -> bytes:
    if not 1 <= len(packet.payload) <= MAX_PAYLOAD:
        raise ValueError(f"payload must be 1..{MAX_PAYLOAD} bytes, not {len(packet.payload)}")
    if not 0 <= packet.address <= 0xFFFFFFFF:
        raise ValueError("address must fit in 32 bits")
    kind = PacketKind(packet.kind)
    return b"".join(
        (
            START_CODE,
            packet.address.to_bytes(4, "big"),
            bytes((kind,)),
            (len(packet.payload) + CHECKSUM_SIZE).to_bytes(2, "big"),
            packet.payload,
            checksum(kind, packet.payload).to_bytes(2, "big"),
        )
    )


def decode(frame: bytes) -> Packet:
    """Exactly one complete frame; anything else raises :class:`ProtocolError`."""
    verdict, packet, reason = _inspect(frame)
    if packet is None:
        raise ProtocolError(reason if verdict is _Verdict.INVALID else "incomplete frame")
    if packet.frame_size != len(frame):
        raise ProtocolError(f"{len(frame) - packet.frame_size} trailing byte(s) after the frame")
    return packet


class _Verdict(Enum):
    NEED_MORE = "need more"
    INVALID = "invalid"
    VALID = "valid"


def _inspect(buf: bytes | bytearray) -> tuple[_Verdict, Packet | None, str]:
    """Judge the frame that ``buf`` starts with, rejecting as early as the header allows."""
    if len(buf) < len(START_CODE):
        return _Verdict.NEED_MORE, None, ""
    if buf[: len(START_CODE)] != START_CODE:
        return _Verdict.INVALID, None, "no start code"
    if len(buf) > 6 and buf[6] not in _KINDS:
        return _Verdict.INVALID, None, f"unknown packet kind 0x{buf[6]:02X}"
    if len(buf) < HEADER_SIZE:
        return _Verdict.NEED_MORE, None, ""
    length = int.from_bytes(buf[7:9], "big")
    if not CHECKSUM_SIZE < length <= MAX_PAYLOAD + CHECKSUM_SIZE:
        return _Verdict.INVALID, None, f"implausible length {length}"
    end = HEADER_SIZE + length
    if len(buf) < end:
        return _Verdict.NEED_MORE, None, ""
    kind = PacketKind(buf[6])
    payload = bytes(buf[HEADER_SIZE : end - CHECKSUM_SIZE])
    if int.from_bytes(buf[end - CHECKSUM_SIZE : end], "big") != checksum(kind, payload):
        return _Verdict.INVALID, None, "bad checksum"
    return _Verdict.VALID, Packet(kind, payload, int.from_bytes(buf[2:6], "big")), ""


_KINDS = frozenset(int(kind) for kind in PacketKind)


class PacketParser:
    """Turns a byte stream into packets, skipping whatever is not a valid frame.

    ``dropped_bytes`` counts every byte thrown away and ``rejected_frames`` every header that
    looked like a frame start but did not check out, so a noisy line shows up in the logs as numbers.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.dropped_bytes = 0
        self.rejected_frames = 0

    @property
    def pending(self) -> int:
        """Bytes held back because they may begin a frame that is still arriving."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        self._buffer += data
        return self._drain()

    def flush(self) -> list[Packet]:
        """The sender went quiet: a frame still waiting for bytes will not be completed.

        Its header was noise (or a frame cut off by a reconnect), and a real frame may hide behind
        it, so rescan from the byte after its start code.
        """
        packets = self._drain()
        while self._buffer:
            self._discard(1)
            packets += self._drain()
        return packets

    def reset(self) -> None:
        """Forget buffered bytes (before a new exchange, after a reconnect)."""
        self._discard(len(self._buffer))

    def _drain(self) -> list[Packet]:
        packets: list[Packet] = []
        while self._buffer:
            start = self._buffer.find(START_CODE)
            if start < 0:
                # A lone trailing first byte of the start code may be completed by the next chunk.
                keep = 1 if self._buffer[-1] == START_CODE[0] else 0
                self._discard(len(self._buffer) - keep)
                break
            self._discard(start)
            verdict, packet, _ = _inspect(self._buffer)
            if verdict is _Verdict.NEED_MORE:
                break
            if packet is None:
                self.rejected_frames += 1
                self._discard(1)
                continue
            del self._buffer[: packet.frame_size]
            packets.append(packet)
        return packets

    def _discard(self, count: int) -> None:
        if count > 0:
            del self._buffer[:count]
            self.dropped_bytes += count


def data_packets(data: bytes, packet_size: int, address: int = DEFAULT_ADDRESS) -> list[Packet]:
    """``data`` as the DATA packets of a transfer, the last one marked END_OF_DATA."""
    if not data or len(data) > MAX_TRANSFER:
        raise ValueError(f"a transfer carries 1..{MAX_TRANSFER} bytes, not {len(data)}")
    if not 1 <= packet_size <= MAX_PAYLOAD:
        raise ValueError(f"packet size must be 1..{MAX_PAYLOAD}")
    chunks = [data[i : i + packet_size] for i in range(0, len(data), packet_size)]
    return [
        Packet(PacketKind.END_OF_DATA if i == len(chunks) - 1 else PacketKind.DATA, chunk, address)
        for i, chunk in enumerate(chunks)
    ]


class DataAssembler:
    """Collects one transfer: DATA packets closed by an END_OF_DATA packet."""

    def __init__(self, max_bytes: int = MAX_TRANSFER) -> None:
        self._max_bytes = max_bytes
        self._parts = bytearray()

    def add(self, packet: Packet) -> bytes | None:
        """The whole transfer once its last packet arrived, else ``None``."""
        if packet.kind not in (PacketKind.DATA, PacketKind.END_OF_DATA):
            raise ProtocolError(f"{packet.kind.name} packet inside a data transfer")
        if len(self._parts) + len(packet.payload) > self._max_bytes:
            raise ProtocolError(f"data transfer longer than {self._max_bytes} bytes")
        self._parts += packet.payload
        if packet.kind is PacketKind.DATA:
            return None
        data = bytes(self._parts)
        self._parts.clear()
        return data
