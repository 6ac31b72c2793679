"""Frontex §4.4.7: the MRZ stored in DG1 must be the MRZ printed on the data page that the document
reader saw; any difference refers the traveller (a chip moved into another booklet, or a misread)."""

from __future__ import annotations

from collections.abc import Sequence

from drivers.chip.lds import files

MRZ_MISMATCH = "DG1_MRZ_MISMATCH"  # reason code


def dg1_matches_mrz(dg1: bytes, printed_lines: Sequence[str]) -> bool:
    """Character-for-character equality of DG1's MRZ and the printed lines (whitespace around the
    lines and letter case, which OCR may vary, ignored)."""
    printed = [line.strip().upper() for line in printed_lines if line.strip()]
    try:
        return files.parse_dg1(dg1) == printed
    except ValueError:
        return False
