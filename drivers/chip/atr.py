"""What an ATR says about extended-length APDUs (ISO/IEC 7816-3 structure, 7816-4 card capabilities).

A PC/SC contactless reader builds the ATR of a type A/B card from its ATS historical bytes or ATQB
(PC/SC part 3), so the chip's own card-capabilities byte reaches us here.
"""

from __future__ import annotations

CATEGORY_COMPACT_TLV = 0x80
CARD_CAPABILITIES = 0x7  # compact-TLV tag; its third byte's b7 means extended Lc and Le
EXTENDED_LENGTH_BIT = 0x40


def historical_bytes(atr: bytes) -> bytes:
    if len(atr) < 2:
        return b""
    count = atr[1] & 0x0F
    offset, y = 2, atr[1] >> 4
    while True:
        offset += bin(y & 0x7).count("1")  # TA, TB, TC
        if not y & 0x8:  # no TD: interface bytes end
            break
        if offset >= len(atr):
            return b""
        y = atr[offset] >> 4
        offset += 1
    return atr[offset : offset + count]


def supports_extended_length(atr: bytes) -> bool:
    hist = historical_bytes(atr)
    if not hist or hist[0] != CATEGORY_COMPACT_TLV:
        return False
    offset = 1
    while offset < len(hist):
        tag, length = hist[offset] >> 4, hist[offset] & 0x0F
        value = hist[offset + 1 : offset + 1 + length]
        if tag == CARD_CAPABILITIES and len(value) >= 3:
            return bool(value[2] & EXTENDED_LENGTH_BIT)
        offset += 1 + length
    return False


def build(historical: bytes) -> bytes:
    """A T=1 ATR carrying ``historical`` (what the simulated chip presents)."""
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical  # T0, TD1 (T=0 → TD2), TD2 (T=1)
    check = 0
    for byte in body:
        check ^= byte
    return b"\x3b" + body + bytes((check,))


# Category 80, card capabilities: selection by full DF name and by path/file id, short EF ids;
# data unit 1 byte; command chaining and extended Lc/Le.
PASSPORT_HISTORICAL = bytes((CATEGORY_COMPACT_TLV, 0x73, 0xA0, 0x21, 0xC0))
