"""BER-TLV (ISO/IEC 7816-4, ICAO 9303-10 §4) for secure-messaging objects, the LDS files and
EF.CardAccess: the one module both the transport and the LDS code use.

Tags are kept as the integer value of their bytes as written on the chip (0x5F1F, 0x7F61). Not
through an ASN.1 library on purpose: the LDS writes some tags in a non-minimal form (EF.COM's 5F01
is class application, number 1, which DER would write as 41), and a reader must learn a file's
length from its first bytes alone (:func:`total_length`).
"""

from __future__ import annotations

from collections.abc import Iterator


class TlvError(ValueError):
    """The bytes are not the BER-TLV the caller expected."""


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def encode(tag: int, value: bytes) -> bytes:
    """One TLV object; ``value`` is the already-encoded contents (concatenate children yourself)."""
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big") + encode_length(len(value)) + value


def _header(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """(tag, value length, header length) at ``offset``; None when ``data`` ends inside the header."""
    pos = offset + 1
    if pos > len(data):
        return None
    if data[offset] & 0x1F == 0x1F:  # multi-byte tag: continuation bytes have b8 set
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
        return tag, first, pos - offset
    count = first & 0x7F
    if count == 0 or count > 4:
        raise TlvError("indefinite or oversized TLV length")
    if pos + count > len(data):
        return None
    return tag, int.from_bytes(data[pos : pos + count], "big"), pos + count - offset


def read_header(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """(tag, value length, header length) of the TLV at ``offset``; TlvError if cut or malformed."""
    header = _header(data, offset)
    if header is None:
        raise TlvError("data ends inside a TLV header")
    return header


def decode(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """(tag, value, end offset) of the TLV object starting at ``offset``."""
    tag, length, header = read_header(data, offset)
    start = offset + header
    if start + length > len(data):
        raise TlvError(f"tag {tag:X} says {length} bytes, {len(data) - start} present")
    return tag, data[start : start + length], start + length


def children(value: bytes) -> Iterator[tuple[int, bytes]]:
    """The (tag, value) pairs of the objects concatenated in ``value`` (a constructed object's value,
    or a sequence of secure-messaging objects)."""
    offset = 0
    while offset < len(value):
        tag, contents, offset = decode(value, offset)
        yield tag, contents


def parse(data: bytes) -> dict[int, bytes]:
    """The objects of ``data`` by tag (the first of each tag)."""
    found: dict[int, bytes] = {}
    for tag, value in children(data):
        found.setdefault(tag, value)
    return found


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
