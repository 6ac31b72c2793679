"""BER-TLV framing (ISO/IEC 7816-4) for secure-messaging objects, file headers and EF.CardAccess.

Only the framing: tags are kept as their raw bytes' integer value, contents stay opaque.
"""

from __future__ import annotations

from collections.abc import Iterator


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def encode(tag: int, value: bytes) -> bytes:
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big") + encode_length(len(value)) + value


def read_header(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """(tag, value length, header length) of the TLV at ``offset``; ``ValueError`` if cut or malformed."""
    start = offset
    if offset >= len(data):
        raise ValueError("TLV header cut short")
    tag = data[offset]
    offset += 1
    if tag & 0x1F == 0x1F:  # multi-byte tag: continuation bytes have b8 set
        while True:
            if offset >= len(data):
                raise ValueError("TLV tag cut short")
            tag = (tag << 8) | data[offset]
            offset += 1
            if not data[offset - 1] & 0x80:
                break
    if offset >= len(data):
        raise ValueError("TLV length cut short")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return tag, first, offset - start
    size = first & 0x7F
    if size == 0 or size > 4 or offset + size > len(data):
        raise ValueError("TLV length malformed or cut short")
    return tag, int.from_bytes(data[offset : offset + size], "big"), offset + size - start


def iterate(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (tag, value) pairs one after the other in ``data``."""
    offset = 0
    while offset < len(data):
        tag, length, header = read_header(data, offset)
        end = offset + header + length
        if end > len(data):
            raise ValueError("TLV value cut short")
        yield tag, data[offset + header : end]
        offset = end


def parse(data: bytes) -> dict[int, bytes]:
    """The objects of ``data`` by tag (the first of each tag)."""
    found: dict[int, bytes] = {}
    for tag, value in iterate(data):
        found.setdefault(tag, value)
    return found


def unwrap(data: bytes, tag: int) -> bytes:
    """The value of the single object ``tag`` that ``data`` must be."""
    got, length, header = read_header(data)
    if got != tag or header + length != len(data):
        raise ValueError(f"expected one TLV with tag {tag:X}")
    return data[header:]
