"""Where the ePassport's files live (ICAO 9303-10 §3, §4): the one table of file ids, short EF ids,
outer tags and data group numbers, for the transport, the simulated chip and the LDS code."""

from __future__ import annotations

from dataclasses import dataclass

LDS_AID = bytes.fromhex("A0000002471001")
MASTER_FILE = 0x3F00
CARD_ACCESS = "CardAccess"  # in the master file, readable before access control


@dataclass(frozen=True)
class LdsFile:
    name: str  # the file name in an LDS folder is ``<name>.bin``
    fid: int  # file identifier for SELECT
    sfi: int  # short EF identifier for READ BINARY
    tag: int | None  # tag of the outer TLV object (EF.CardAccess is a bare SET)
    dg: int | None  # data group number, as in EF.COM and the SOD


FILES: dict[str, LdsFile] = {
    f.name: f
    for f in (
        LdsFile(CARD_ACCESS, 0x011C, 0x1C, None, None),
        LdsFile("COM", 0x011E, 0x1E, 0x60, None),
        LdsFile("SOD", 0x011D, 0x1D, 0x77, None),
        LdsFile("DG1", 0x0101, 0x01, 0x61, 1),
        LdsFile("DG2", 0x0102, 0x02, 0x75, 2),
        LdsFile("DG3", 0x0103, 0x03, 0x63, 3),
        LdsFile("DG4", 0x0104, 0x04, 0x76, 4),
        *(LdsFile(f"DG{n}", 0x0100 + n, n, 0x60 + n, n) for n in range(5, 15 + 1)),
        LdsFile("DG16", 0x0110, 0x10, 0x70, 16),
    )
}
DG_BY_TAG = {f.tag: f.dg for f in FILES.values() if f.dg is not None}
TAG_BY_DG = {dg: tag for tag, dg in DG_BY_TAG.items()}
# What a gate reads, in the order it needs them: the MRZ first, the portrait, then what authenticates.
DEFAULT_FILES = ("COM", "DG1", "DG2", "DG14", "DG15", "SOD")


def _file(name: str) -> LdsFile:
    try:
        return FILES[name]
    except KeyError:
        raise ValueError(f"unknown ePassport file {name!r}") from None


def file_id(name: str) -> int:
    return _file(name).fid


def short_id(name: str) -> int:
    return _file(name).sfi


def name_of(fid: int) -> str | None:
    return next((f.name for f in FILES.values() if f.fid == fid), None)
