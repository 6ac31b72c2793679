"""BER-TLV as the LDS uses it (ICAO 9303-10 §4, ISO/IEC 7816-4): tags are written as their bytes
(0x5F1F, 0x7F61). Not through an ASN.1 library on purpose: the LDS writes some tags in a non-minimal
form (EF.COM's 5F01 is class application, number 1, which DER would write as 41), so a tag is kept
as the bytes on the chip; and a reader must learn a file's length from its first bytes alone.
"""

from __future__ import annotations

from collections.abc import Iterator


class TlvError(ValueError):
    """The bytes are not the BER-TLV the caller expected."""


def _tag_bytes(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def _length_bytes(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def encode(tag: int, value: bytes) -> bytes:
    """One TLV object; ``value`` is the already-encoded contents (concatenate children yourself)."""
    return _tag_bytes(tag) + _length_bytes(len(value)) + value


def _header(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """(tag, header length, value length) at ``offset``; None when ``data`` ends inside the header."""
    pos = offset + 1
    if pos > len(data):
        return None
    if data[offset] & 0x1F == 0x1F:
        while True:
            if pos >= len(data):
                return None
            pos += 1
            if not data[pos - 1] & 0x80:
                break
    tag = int.from_bytes(data[offset:pos], "big")
    if pos >= len(data):
        return None
    first = data[pos]
    pos += 1
    if first < 0x80:
        return tag, pos - offset, first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise TlvError("indefinite or oversized length in a chip file")
    if pos + count > len(data):
        return None
    return tag, pos + count - offset, int.from_bytes(data[pos : pos + count], "big")


def decode(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """(tag, value, end offset) of the TLV object starting at ``offset``."""
    header = _header(data, offset)
    if header is None:
        raise TlvError("data ends inside a TLV header")
    tag, header_length, length = header
    start = offset + header_length
    if start + length > len(data):
        raise TlvError(f"tag {tag:X} says {length} bytes, {len(data) - start} present")
    return tag, data[start : start + length], start + length


def children(value: bytes) -> Iterator[tuple[int, bytes]]:
    """The (tag, value) pairs of the objects concatenated in a constructed object's value."""
    offset = 0
    while offset < len(value):
        tag, contents, offset = decode(value, offset)
        yield tag, contents


def child(value: bytes, tag: int) -> bytes:
    """The value of the first child with ``tag``; TlvError when there is none."""
    for found, contents in children(value):
        if found == tag:
            return contents
    raise TlvError(f"no tag {tag:X}")


def unwrap(data: bytes, tag: int) -> bytes:
    """The value of the single object ``data`` must be, checking its tag."""
    found, value, end = decode(data)
    if found != tag:
        raise TlvError(f"expected tag {tag:X}, found {found:X}")
    if end != len(data):
        raise TlvError(f"{len(data) - end} bytes after the object with tag {tag:X}")
    return value


def total_length(head: bytes) -> int | None:
    """Length of the whole object (header included) from its first bytes; None if more bytes are
    needed. A chip file is one such object, so this is how a reader learns how much to READ BINARY."""
    header = _header(head, 0)
    return None if header is None else header[1] + header[2]
