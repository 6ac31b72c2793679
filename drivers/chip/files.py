"""Where the ePassport's files live (ICAO 9303-10): file ids, short EF ids, the LDS application."""

from __future__ import annotations

from drivers.chip import tlv

LDS_AID = bytes.fromhex("A0000002471001")
MASTER_FILE = 0x3F00
CARD_ACCESS = "CardAccess"  # in the master file, readable before access control

# name -> file id; the short EF id is the file id's low byte.
FILE_IDS: dict[str, int] = {
    "COM": 0x011E,
    "SOD": 0x011D,
    CARD_ACCESS: 0x011C,
    **{f"DG{n}": 0x0100 + n for n in range(1, 17)},
}
# What a gate reads, in the order it needs them: the MRZ first, the portrait, then what authenticates.
DEFAULT_FILES = ("COM", "DG1", "DG2", "DG14", "DG15", "SOD")


def file_id(name: str) -> int:
    try:
        return FILE_IDS[name]
    except KeyError:
        raise ValueError(f"unknown ePassport file {name!r}") from None


def short_id(name: str) -> int:
    return file_id(name) & 0x1F


def name_of(fid: int) -> str | None:
    return next((name for name, known in FILE_IDS.items() if known == fid), None)


def total_length(head: bytes) -> int:
    """A file's whole length from its first bytes: the outer TLV's header plus its value."""
    _, length, header = tlv.read_header(head)
    return header + length
