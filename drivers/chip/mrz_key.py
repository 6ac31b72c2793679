"""The access key of a chip: the MRZ information of ICAO 9303-11 §9.7.2 (BAC and PACE with MRZ).

Only the three fields the key is made of, with their check digits, so the drivers need nothing of the
kiosk's MRZ parser; the simulated chip also finds its key in DG1 here.
"""

from __future__ import annotations

from drivers.chip.lds.files import parse_dg1
from drivers.interfaces import ChipAccessKey

_WEIGHTS = (7, 3, 1)


def _value(char: str) -> int:
    if char.isdigit():
        return int(char)
    if "A" <= char <= "Z":
        return ord(char) - ord("A") + 10
    if char == "<":
        return 0
    raise ValueError(f"{char!r} is not an MRZ character")


def check_digit(field: str) -> str:
    return str(sum(_value(c) * _WEIGHTS[i % 3] for i, c in enumerate(field)) % 10)


def mrz_information(key: ChipAccessKey) -> str:
    """Document number (at least 9 characters, '<'-filled), birth and expiry date, each with check digit."""
    number = key.document_number.upper().ljust(9, "<")
    return "".join(f + check_digit(f) for f in (number, key.date_of_birth, key.date_of_expiry))


def key_from_mrz(lines: list[str]) -> ChipAccessKey:
    """The access key in TD1 (3×30) or TD3 (2×44) MRZ lines."""
    if len(lines) == 3 and all(len(line) == 30 for line in lines):
        number = lines[0][5:14]
        # TD1 overflow: the number continues in the optional data, followed by its check digit
        if lines[0][14] == "<":
            rest = lines[0][15:30].split("<", 1)[0]
            number += rest[:-1]
        return ChipAccessKey(number.rstrip("<"), lines[1][0:6], lines[1][8:14])
    if len(lines) == 2 and all(len(line) == 44 for line in lines):
        return ChipAccessKey(lines[1][0:9].rstrip("<"), lines[1][13:19], lines[1][21:27])
    raise ValueError("not a TD1 or TD3 MRZ")


def key_from_dg1(dg1: bytes) -> ChipAccessKey:
    """The access key in a DG1 file (tag 61 holding the MRZ as 5F1F)."""
    return key_from_mrz(parse_dg1(dg1))
