"""ICAO 9303 machine-readable zones: parse, validate and build TD1, TD2, TD3, MRV-A and MRV-B.

Layouts (1-based positions, as Doc 9303 parts 4–7 number them):

* TD3 (2×44, passports) and MRV-A (2×44, visas, document code V…): line 1 = document code 1–2,
  issuing state 3–5, names 6–44. Line 2 = document number 1–9, check 10, nationality 11–13,
  birth date 14–19, check 20, sex 21, expiry date 22–27, check 28, then TD3: personal number 29–42,
  its check 43 (``<`` allowed when the number is all fillers), composite 44 over 1–10, 14–20, 22–43;
  MRV-A: optional data 29–44 and no composite.
* TD2 (2×36) and MRV-B (2×36, document code V…): as above with names 6–36; TD2 has optional data
  29–35 and a composite at 36 over 1–10, 14–20, 22–35; MRV-B has optional data 29–36, no composite.
* TD1 (3×30): line 1 = document code 1–2, issuing state 3–5, document number 6–14, check 15,
  optional data 16–30. Line 2 = birth date 1–6, check 7, sex 8, expiry 9–14, check 15,
  nationality 16–18, optional data 19–29, composite 30 over line 1 6–30 and line 2 1–7, 9–15, 19–29.
  Line 3 = names.

TD1 and TD2 document numbers longer than 9 characters: the first 9 fill the number field, the
check-digit position holds ``<``, and the rest of the number opens the optional data field followed
by the check digit (computed over the whole number) and one filler; the optional data proper is
what follows that filler.

Dates carry two-digit years, so the century is inferred from ``today``:

* birth date: the most recent century that does not put the birth after ``today`` (born today is
  fine); a person cannot be born in the future, and nobody at a gate is 100 or more often enough
  to matter.
* expiry date: the century that puts the date in the window ``[today − 50 years, today + 50 years)``
  (compared as (year, month, day), so 29 February needs no special case); documents are valid for
  at most ten years, so the window leaves ample room either side while staying unambiguous.

An invalid date (month 13, 30 February) is reported in ``errors`` and leaves the date as None.

OCR corrections follow :mod:`kiosk.documents.mrz_ocr`. Each one is reported as a
:class:`Correction` whose ``position`` is the 0-based offset inside the named field (for a long
document number, inside the whole number); check-digit positions are reported as
``<field>_check_digit``. A correction the position's character class proves (a letter in a
digits-only field, a digit in a letters-only one) is applied to the reading. A repair of the
document number, which is alphanumeric, is only ever probable: it is reported with
``proven=False`` and not applied, so the number's check (and the composite) fail as read and the
MRZ is not valid; :attr:`Mrz.repaired` is the same zone read with that repair accepted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from enum import StrEnum
from typing import Any, NamedTuple

from kiosk.documents.checkdigit import FILLER, MRZ_ALPHABET, check_digit, verifies
from kiosk.documents.mrz_ocr import DIGIT_TO_LETTERS, alternatives, as_digit, as_letter

__all__ = [
    "Correction",
    "Mrz",
    "MrzFormat",
    "NotAnMrz",
    "check_digit",
    "format_mrz",
    "parse_mrz",
]


class MrzFormat(StrEnum):
    TD1 = "TD1"
    TD2 = "TD2"
    TD3 = "TD3"
    MRVA = "MRVA"
    MRVB = "MRVB"


class NotAnMrz(ValueError):
    """The input is not shaped like an MRZ at all; the message is a one-line reason."""


@dataclass(frozen=True)
class Correction:
    field: str
    position: int
    original: str
    corrected: str
    # False: only probable (an OCR confusion in an alphanumeric field that one check digit favours).
    proven: bool = True


@dataclass(frozen=True)
class Mrz:
    format: MrzFormat
    document_code: str
    issuing_state: str
    surname: str
    given_names: str
    document_number: str
    nationality: str
    birth_date: date | None
    expiry_date: date | None
    sex: str
    optional_data: str
    optional_data_2: str
    checks: dict[str, bool]
    errors: tuple[str, ...]
    corrections: tuple[Correction, ...]
    names_truncated: bool
    lines: tuple[str, ...]
    # The zone read with the one probable document-number repair accepted; its ``valid`` means
    # "valid if that repair is right", never that the document as read is.
    repaired: Mrz | None = None

    @property
    def valid(self) -> bool:
        return all(self.checks.values()) and not self.errors

    @property
    def repaired_document_number(self) -> str | None:
        return self.repaired.document_number if self.repaired else None

    @property
    def valid_if_repaired(self) -> bool:
        """Invalid as read, and the only thing wrong is a document number a probable repair explains."""
        return not self.valid and self.repaired is not None and self.repaired.valid

    def to_json(self) -> dict[str, Any]:
        """The ``python -m kiosk mrz`` output object (JSON-serialisable)."""
        return {
            "format": self.format.value,
            "document_code": self.document_code,
            "issuing_state": self.issuing_state,
            "surname": self.surname,
            "given_names": self.given_names,
            "document_number": self.document_number,
            "nationality": self.nationality,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "expiry_date": self.expiry_date.isoformat() if self.expiry_date else None,
            "sex": self.sex,
            "optional_data": self.optional_data,
            "checks": dict(self.checks),
            "valid": self.valid,
            "errors": list(self.errors),
            "corrections": [asdict(c) for c in self.corrections],
            "repaired_document_number": self.repaired_document_number,
            "names_truncated": self.names_truncated,
        }


# --- layouts -------------------------------------------------------------------------------------

Cell = tuple[int, int]  # (line, column), 0-based


class _Span(NamedTuple):
    line: int
    start: int
    stop: int

    def cells(self) -> list[Cell]:
        return [(self.line, col) for col in range(self.start, self.stop)]

    @property
    def width(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class _Layout:
    fmt: MrzFormat
    line_count: int
    width: int
    document_letters: str  # allowed first letters of the document code
    document_code: _Span
    issuing_state: _Span
    names: _Span
    document_number: _Span
    document_number_check: _Span
    nationality: _Span
    birth_date: _Span
    birth_date_check: _Span
    sex: _Span
    expiry_date: _Span
    expiry_date_check: _Span
    optional_data: _Span
    optional_data_check: _Span | None = None
    optional_data_2: _Span | None = None
    composite: tuple[_Span, ...] = ()
    composite_check: _Span | None = None
    long_number: bool = False


def _two_line(
    fmt: MrzFormat,
    width: int,
    letters: str,
    *,
    optional_stop: int,
    optional_check: bool = False,
    composite: bool = False,
    long_number: bool = False,
) -> _Layout:
    after_optional = optional_stop + (1 if optional_check else 0)
    return _Layout(
        fmt=fmt,
        line_count=2,
        width=width,
        document_letters=letters,
        document_code=_Span(0, 0, 2),
        issuing_state=_Span(0, 2, 5),
        names=_Span(0, 5, width),
        document_number=_Span(1, 0, 9),
        document_number_check=_Span(1, 9, 10),
        nationality=_Span(1, 10, 13),
        birth_date=_Span(1, 13, 19),
        birth_date_check=_Span(1, 19, 20),
        sex=_Span(1, 20, 21),
        expiry_date=_Span(1, 21, 27),
        expiry_date_check=_Span(1, 27, 28),
        optional_data=_Span(1, 28, optional_stop),
        optional_data_check=_Span(1, optional_stop, optional_stop + 1) if optional_check else None,
        composite=(_Span(1, 0, 10), _Span(1, 13, 20), _Span(1, 21, after_optional)) if composite else (),
        composite_check=_Span(1, after_optional, after_optional + 1) if composite else None,
        long_number=long_number,
    )


_LAYOUTS: dict[MrzFormat, _Layout] = {
    MrzFormat.TD1: _Layout(
        fmt=MrzFormat.TD1,
        line_count=3,
        width=30,
        document_letters="ACI",
        document_code=_Span(0, 0, 2),
        issuing_state=_Span(0, 2, 5),
        document_number=_Span(0, 5, 14),
        document_number_check=_Span(0, 14, 15),
        optional_data=_Span(0, 15, 30),
        birth_date=_Span(1, 0, 6),
        birth_date_check=_Span(1, 6, 7),
        sex=_Span(1, 7, 8),
        expiry_date=_Span(1, 8, 14),
        expiry_date_check=_Span(1, 14, 15),
        nationality=_Span(1, 15, 18),
        optional_data_2=_Span(1, 18, 29),
        composite=(_Span(0, 5, 30), _Span(1, 0, 7), _Span(1, 8, 15), _Span(1, 18, 29)),
        composite_check=_Span(1, 29, 30),
        names=_Span(2, 0, 30),
        long_number=True,
    ),
    MrzFormat.TD2: _two_line(MrzFormat.TD2, 36, "ACI", optional_stop=35, composite=True, long_number=True),
    MrzFormat.TD3: _two_line(MrzFormat.TD3, 44, "P", optional_stop=42, optional_check=True, composite=True),
    MrzFormat.MRVA: _two_line(MrzFormat.MRVA, 44, "V", optional_stop=44),
    MrzFormat.MRVB: _two_line(MrzFormat.MRVB, 36, "V", optional_stop=36),
}

# A visa shares its size with TD2/TD3; only the document code tells them apart.
_VISA_LETTER = "V"

# Far beyond any MRZ plus generous whitespace; refuses garbage before any per-character work.
_MAX_INPUT_CHARS = 4096
_INPUT_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz") | MRZ_ALPHABET

_STATE_CODE = re.compile(r"[A-Z]{1,3}")
_DOCUMENT_CODE = re.compile(r"[A-Z]{1,2}")


# --- parsing -------------------------------------------------------------------------------------


def _normalise(text: str | Sequence[str]) -> list[str]:
    if isinstance(text, str):
        pieces = [text]
    else:
        pieces = list(text)
        if not all(isinstance(p, str) for p in pieces):
            raise NotAnMrz("input lines must be text")
    if sum(len(p) for p in pieces) > _MAX_INPUT_CHARS:
        raise NotAnMrz(f"input longer than {_MAX_INPUT_CHARS} characters")
    lines = [line.strip() for p in pieces for line in p.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise NotAnMrz("no MRZ lines in input")
    if len(lines) not in (2, 3):
        raise NotAnMrz(f"expected 2 or 3 MRZ lines, got {len(lines)}")
    for number, line in enumerate(lines, start=1):
        for column, ch in enumerate(line, start=1):
            # Checked before uppercasing: str.upper() can change length for non-ASCII (ß → SS).
            if ch not in _INPUT_ALPHABET:
                raise NotAnMrz(f"line {number} has {ch!r} at position {column}, not an MRZ character")
    lengths = [len(line) for line in lines]
    if len(lines) == 3 and lengths != [30, 30, 30]:
        raise NotAnMrz(f"3-line MRZ (TD1) needs 30 characters per line, got {_lengths(lengths)}")
    if len(lines) == 2 and lengths not in ([36, 36], [44, 44]):
        raise NotAnMrz(f"2-line MRZ needs 36 (TD2/MRV-B) or 44 (TD3/MRV-A) per line, got {_lengths(lengths)}")
    return [line.upper() for line in lines]


def _lengths(lengths: list[int]) -> str:
    return ", ".join(str(n) for n in lengths)


def _detect(lines: list[str]) -> _Layout:
    if len(lines) == 3:
        return _LAYOUTS[MrzFormat.TD1]
    visa = lines[0][0] == _VISA_LETTER
    if len(lines[0]) == 44:
        return _LAYOUTS[MrzFormat.MRVA if visa else MrzFormat.TD3]
    return _LAYOUTS[MrzFormat.MRVB if visa else MrzFormat.TD2]


def _birth_year(yy: int, mm: int, dd: int, today: date) -> int:
    year = today.year - today.year % 100 + yy
    if (year, mm, dd) > (today.year, today.month, today.day):
        year -= 100
    return year


def _expiry_year(yy: int, mm: int, dd: int, today: date) -> int:
    low = (today.year - 50, today.month, today.day)
    year = low[0] + (yy - low[0]) % 100  # first year at or after the window's start year ending in yy
    if (year, mm, dd) < low:
        year += 100
    return year


def _read_date(text: str, today: date, *, birth: bool) -> date | None:
    if not (len(text) == 6 and text.isascii() and text.isdigit()):
        return None
    yy, mm, dd = int(text[:2]), int(text[2:4]), int(text[4:])
    if not (1 <= mm <= 12 and 1 <= dd <= 31):
        return None
    year = _birth_year(yy, mm, dd, today) if birth else _expiry_year(yy, mm, dd, today)
    try:
        return date(year, mm, dd)
    except ValueError:
        return None


def _words(part: str) -> str:
    return " ".join(word for word in part.split(FILLER) if word)


def _optional_ok(data: str, digit: str) -> bool:
    # An unused TD3 personal number may carry "<" (or 0, which is what the arithmetic gives).
    if set(data) == {FILLER}:
        return digit in (FILLER, "0")
    return verifies(data, digit)


class _Reader:
    """One parse: the character grid (corrected in place) and what was found about it."""

    def __init__(self, layout: _Layout, lines: list[str], today: date, *, accept_probable: bool) -> None:
        self.layout = layout
        self.today = today
        self.accept_probable = accept_probable
        self.grid = [list(line) for line in lines]
        self.corrections: list[Correction] = []
        self.errors: list[str] = []
        self.probable_repair_found = False

    def text(self, cells: Sequence[Cell]) -> str:
        return "".join(self.grid[line][col] for line, col in cells)

    def write(self, field: str, cells: Sequence[Cell], value: str, *, proven: bool = True) -> None:
        """Report every changed character; apply the changes unless they are probable and not accepted."""
        apply = proven or self.accept_probable
        for position, ((line, col), ch) in enumerate(zip(cells, value, strict=True)):
            old = self.grid[line][col]
            if old != ch:
                self.corrections.append(Correction(field, position, old, ch, proven))
                if apply:
                    self.grid[line][col] = ch

    # alphabetic fields: no check digit covers them, so the character class is the only proof
    def alphabetic(self, field: str, span: _Span) -> tuple[str, bool]:
        """The field after proven corrections, and whether every character now fits the class."""
        raw = self.text(span.cells())
        fixed: list[str] = []
        clean = True
        for position, ch in enumerate(raw):
            reading = as_letter(ch)
            if reading is None:
                clean = False
                twins = DIGIT_TO_LETTERS.get(ch, "")
                why = f" (OCR reading ambiguous: {', '.join(twins)})" if twins else ""
                self.errors.append(f"invalid character {ch!r} in {field} at position {position}{why}")
                reading = ch
            fixed.append(reading)
        value = "".join(fixed)
        self.write(field, span.cells(), value)
        return value, clean

    def document_code(self) -> str:
        value, clean = self.alphabetic("document_code", self.layout.document_code)
        code = value.rstrip(FILLER)
        if clean and (not _DOCUMENT_CODE.fullmatch(code) or code[0] not in self.layout.document_letters):
            expected = " or ".join(self.layout.document_letters)
            self.errors.append(
                f"invalid document code {value!r} for {self.layout.fmt.value} (must start with {expected})"
            )
        return code

    def state_code(self, field: str, span: _Span) -> str:
        value, clean = self.alphabetic(field, span)
        code = value.rstrip(FILLER)
        if clean and not _STATE_CODE.fullmatch(code):
            self.errors.append(f"invalid {field.replace('_', ' ')} code {value!r}")
        return code

    def names(self) -> tuple[str, str, bool]:
        value, _ = self.alphabetic("names", self.layout.names)
        primary, _, secondary = value.partition(FILLER * 2)
        surname, given = _words(primary), _words(secondary)
        if not surname and not given:
            self.errors.append("empty name field")
        # ICAO marks a cut name by letting it run to the last position with no filler after it.
        return surname, given, value[-1] != FILLER

    def sex(self) -> str:
        (cell,) = self.layout.sex.cells()
        ch = self.text([cell])
        if ch in ("M", "F", "X"):
            return ch
        if ch == FILLER:
            return "X"
        self.errors.append(f"invalid sex {ch!r}")
        return "X"

    def numeric_checked(self, field: str, span: _Span, check: _Span) -> bool:
        """A numeric-only field and its check digit; letters become digits only if the digit then agrees."""
        raw, raw_digit = self.text(span.cells()), self.text(check.cells())
        data = "".join(as_digit(ch) for ch in raw)
        digit = as_digit(raw_digit)
        if (data, digit) != (raw, raw_digit) and verifies(data, digit):
            self.write(field, span.cells(), data)
            self.write(f"{field}_check_digit", check.cells(), digit)
            return True
        return verifies(raw, raw_digit)

    def date_field(self, field: str, span: _Span, check: _Span, checks: dict[str, bool]) -> date | None:
        checks[field] = self.numeric_checked(field, span, check)
        if not checks[field]:
            self.errors.append(f"check digit of {field} fails")
        text = self.text(span.cells())
        parsed = _read_date(text, self.today, birth=field == "birth_date")
        if parsed is None:
            self.errors.append(f"invalid {field.replace('_', ' ')} {text}")
        return parsed

    def personal_number(self, checks: dict[str, bool]) -> None:
        span, check = self.layout.optional_data, self.layout.optional_data_check
        assert check is not None
        data, raw_digit = self.text(span.cells()), self.text(check.cells())
        digit = as_digit(raw_digit)
        if digit != raw_digit and _optional_ok(data, digit):
            self.write("optional_data_check_digit", check.cells(), digit)
            ok = True
        else:
            ok = _optional_ok(data, raw_digit)
        checks["optional_data"] = ok
        if not ok:
            self.errors.append("check digit of optional_data fails")

    def composite_agrees(self, edits: Sequence[tuple[Cell, str]]) -> bool:
        """Whether the composite check would pass with ``edits`` applied (True if there is none)."""
        layout = self.layout
        if layout.composite_check is None:
            return True
        saved = [(cell, self.grid[cell[0]][cell[1]]) for cell, _ in edits]
        for (line, col), ch in edits:
            self.grid[line][col] = ch
        try:
            data = "".join(self.text(span.cells()) for span in layout.composite)
            return verifies(data, as_digit(self.text(layout.composite_check.cells())))
        finally:
            for (line, col), ch in saved:
                self.grid[line][col] = ch

    def document_number(self, checks: dict[str, bool]) -> tuple[str, list[Cell]]:
        """The document number, and the cells left for optional data once a long number is taken out."""
        layout = self.layout
        number_cells = layout.document_number.cells()
        digit_cells = layout.document_number_check.cells()
        optional_cells = layout.optional_data.cells()
        principal = self.text(number_cells)
        if layout.long_number and self.text(digit_cells) == FILLER and FILLER not in principal:
            rest = self.text(optional_cells)
            end = rest.find(FILLER)
            end = len(rest) if end < 0 else end
            if end >= 2:  # at least one more character of the number, then its check digit
                number_cells = number_cells + optional_cells[: end - 1]
                digit_cells = [optional_cells[end - 1]]
                optional_cells = optional_cells[end + 1 :]
            else:
                self.errors.append("document number has a filler for its check digit and no continuation")
        checks["document_number"] = self.correct_document_number(number_cells, digit_cells)
        if not checks["document_number"]:
            repair = " as read (an OCR repair would pass, see repaired_document_number)"
            self.errors.append(
                "check digit of document_number fails" + (repair if self.probable_repair_found else "")
            )
        number = self.text(number_cells).rstrip(FILLER)
        if not number:
            self.errors.append("empty document number")
        return number, optional_cells

    def correct_document_number(self, number_cells: list[Cell], digit_cells: list[Cell]) -> bool:
        raw, raw_digit = self.text(number_cells), self.text(digit_cells)
        if verifies(raw, raw_digit):
            return True
        digit = as_digit(raw_digit)
        if digit != raw_digit and verifies(raw, digit):
            self.write("document_number_check_digit", digit_cells, digit)
            return True
        if not digit.isdigit():
            return False
        # Alphanumeric: neither reading is excluded by class, so a substitution counts only if it is the
        # one explanation of the failure. A misread check digit (e.g. 6 seen as 5) is the rival
        # explanation: it is ruled out only by a composite that disagrees with the check digit the
        # number as read would need; without a composite (visas) it never is, and nothing is corrected.
        candidates: list[tuple[int, str]] = []
        for position, ch in enumerate(raw):
            for alt in alternatives(ch):
                candidate = raw[:position] + alt + raw[position + 1 :]
                edits = [(number_cells[position], alt), (digit_cells[0], digit)]
                if verifies(candidate, digit) and self.composite_agrees(edits):
                    candidates.append((position, alt))
        misread_digit = self.layout.composite_check is None or self.composite_agrees(
            [(digit_cells[0], check_digit(raw))]
        )
        if len(candidates) != 1 or misread_digit:
            if candidates:
                rival = " and a misread check digit" if misread_digit else ""
                self.errors.append(
                    f"document number OCR reading ambiguous ({len(candidates)} candidates{rival}), "
                    "not corrected"
                )
            return False
        position, alt = candidates[0]
        self.probable_repair_found = True
        self.write("document_number", number_cells, raw[:position] + alt + raw[position + 1 :], proven=False)
        self.write("document_number_check_digit", digit_cells, digit, proven=False)
        return self.accept_probable

    def composite(self, checks: dict[str, bool]) -> None:
        layout = self.layout
        if layout.composite_check is None:
            return
        cells = layout.composite_check.cells()
        data = "".join(self.text(span.cells()) for span in layout.composite)
        raw_digit = self.text(cells)
        digit = as_digit(raw_digit)
        if digit != raw_digit and verifies(data, digit):
            self.write("composite_check_digit", cells, digit)
            ok = True
        else:
            ok = verifies(data, raw_digit)
        checks["composite"] = ok
        if not ok:
            self.errors.append("check digit of composite fails")

    def read(self) -> Mrz:
        layout = self.layout
        checks: dict[str, bool] = {}
        document_code = self.document_code()
        issuing_state = self.state_code("issuing_state", layout.issuing_state)
        surname, given_names, truncated = self.names()
        nationality = self.state_code("nationality", layout.nationality)
        sex = self.sex()
        # Order matters: the document-number correction consults the composite, which covers the
        # date and personal-number check digits, so those are settled first.
        birth = self.date_field("birth_date", layout.birth_date, layout.birth_date_check, checks)
        expiry = self.date_field("expiry_date", layout.expiry_date, layout.expiry_date_check, checks)
        if layout.optional_data_check is not None:
            self.personal_number(checks)
        document_number, optional_cells = self.document_number(checks)
        self.composite(checks)
        optional_2 = layout.optional_data_2
        order = ("document_number", "birth_date", "expiry_date", "optional_data", "composite")
        return Mrz(
            format=layout.fmt,
            document_code=document_code,
            issuing_state=issuing_state,
            surname=surname,
            given_names=given_names,
            document_number=document_number,
            nationality=nationality,
            birth_date=birth,
            expiry_date=expiry,
            sex=sex,
            optional_data=self.text(optional_cells).rstrip(FILLER),
            optional_data_2=self.text(optional_2.cells()).rstrip(FILLER) if optional_2 else "",
            checks={name: checks[name] for name in order if name in checks},
            errors=tuple(self.errors),
            corrections=tuple(self.corrections),
            names_truncated=truncated,
            lines=tuple("".join(row) for row in self.grid),
        )


def parse_mrz(text: str | Sequence[str], today: date | None = None) -> Mrz:
    """Parse and validate an MRZ given as one text or as lines.

    Surrounding whitespace and blank lines are ignored and letters are uppercased. Raises
    :class:`NotAnMrz` when the line count, line lengths or characters do not make an MRZ; any
    other problem (check digits, dates, codes) is reported in the result's ``checks``/``errors``.
    """
    lines = _normalise(text)
    layout, day = _detect(lines), today or date.today()
    reader = _Reader(layout, lines, day, accept_probable=False)
    mrz = reader.read()
    if not reader.probable_repair_found:
        return mrz
    return replace(mrz, repaired=_Reader(layout, lines, day, accept_probable=True).read())


# --- building ------------------------------------------------------------------------------------

_NAME_INPUT = re.compile(r"[A-Za-z' \-]*")
_NAME_SEPARATORS = re.compile(r"[ \-]+")
_DOCUMENT_NUMBER = re.compile(r"[A-Z0-9]+")
_OPTIONAL = re.compile(r"[A-Z0-9<]*")


def _ascii_upper(value: str, what: str) -> str:
    if not value.isascii():
        raise ValueError(f"{what} {value!r} has characters an MRZ cannot show")
    return value.upper()


def _name_component(value: str, what: str) -> str:
    if not _NAME_INPUT.fullmatch(value):
        raise ValueError(f"{what} {value!r} has characters an MRZ cannot show (transliterate it first)")
    # ICAO: hyphens and spaces become fillers, apostrophes are dropped.
    words = _NAME_SEPARATORS.split(value.replace("'", "").upper())
    return FILLER.join(word for word in words if word)


def _name_field(surname: str, given_names: str, width: int) -> str:
    primary = _name_component(surname, "surname")
    if not primary:
        raise ValueError("surname (primary identifier) is required")
    secondary = _name_component(given_names, "given names")
    full = primary + (FILLER * 2 + secondary if secondary else "")
    if len(full) > width:
        # A cut inside a word leaves a letter in the last position, which is how readers spot
        # truncation; a cut on a word boundary just drops the names that no longer fit.
        full = full[:width].rstrip(FILLER)
    return full.ljust(width, FILLER)


def _state_field(value: str, what: str) -> str:
    code = _ascii_upper(value, what).rstrip(FILLER)
    if not _STATE_CODE.fullmatch(code):
        raise ValueError(f"{what} {value!r} is not a 1–3 letter code")
    return code.ljust(3, FILLER)


def _optional_text(value: str, width: int, what: str) -> str:
    data = _ascii_upper(value, what)
    if not _OPTIONAL.fullmatch(data):
        raise ValueError(f"{what} {value!r} may hold only A–Z, 0–9 and '<'")
    if len(data) > width:
        raise ValueError(f"{what} {value!r} is longer than {width} characters")
    return data


def format_mrz(
    fmt: MrzFormat,
    *,
    document_code: str,
    issuing_state: str,
    surname: str,
    given_names: str,
    document_number: str,
    nationality: str,
    birth_date: date,
    expiry_date: date,
    sex: str,
    optional_data: str = "",
    optional_data_2: str = "",
) -> tuple[str, ...]:
    """Build the MRZ lines for ``fmt`` with every check digit; raises ValueError for unrepresentable input.

    Names are uppercased, spaces and hyphens become ``<``, apostrophes are dropped and the name
    field is cut to fit. Document numbers over 9 characters use the TD1/TD2 continuation in the
    optional data field; TD3 and visas cannot hold them.
    """
    layout = _LAYOUTS[MrzFormat(fmt)]
    grid = [[FILLER] * layout.width for _ in range(layout.line_count)]

    def put(span: _Span, value: str) -> None:
        assert len(value) == span.width, (span, value)
        grid[span.line][span.start : span.stop] = list(value)

    def get(span: _Span) -> str:
        return "".join(grid[span.line][span.start : span.stop])

    code = _ascii_upper(document_code, "document code").rstrip(FILLER)
    if not _DOCUMENT_CODE.fullmatch(code) or code[0] not in layout.document_letters:
        expected = " or ".join(layout.document_letters)
        raise ValueError(
            f"document code {document_code!r} does not fit {layout.fmt.value} (starts with {expected})"
        )
    put(layout.document_code, code.ljust(2, FILLER))
    put(layout.issuing_state, _state_field(issuing_state, "issuing state"))
    put(layout.nationality, _state_field(nationality, "nationality"))
    put(layout.names, _name_field(surname, given_names, layout.names.width))

    sex_code = _ascii_upper(sex, "sex")
    if sex_code not in ("M", "F", "X", FILLER):
        raise ValueError(f"sex {sex!r} must be M, F or X")
    put(layout.sex, sex_code)

    for span, check, value in (
        (layout.birth_date, layout.birth_date_check, birth_date),
        (layout.expiry_date, layout.expiry_date_check, expiry_date),
    ):
        text = value.strftime("%y%m%d")
        put(span, text)
        put(check, check_digit(text))

    number = _ascii_upper(document_number, "document number")
    if not _DOCUMENT_NUMBER.fullmatch(number):
        raise ValueError(f"document number {document_number!r} must be 1 or more of A–Z, 0–9")
    principal_width = layout.document_number.width
    extra = _optional_text(optional_data, layout.optional_data.width, "optional data")
    optional = extra
    if len(number) <= principal_width:
        put(layout.document_number, number.ljust(principal_width, FILLER))
        put(layout.document_number_check, check_digit(number))
    elif layout.long_number:
        put(layout.document_number, number[:principal_width])
        # The filler in the check-digit position is what tells a reader the number continues.
        put(layout.document_number_check, FILLER)
        continuation = number[principal_width:] + check_digit(number)
        optional = continuation + (FILLER + extra if extra else "")
        if len(optional) > layout.optional_data.width:
            raise ValueError(
                f"document number {document_number!r} and optional data {optional_data!r} "
                f"do not fit the {layout.fmt.value} optional data field together"
            )
    else:
        raise ValueError(
            f"document number {document_number!r} is longer than {principal_width} characters, "
            f"which {layout.fmt.value} cannot hold"
        )
    put(layout.optional_data, optional.ljust(layout.optional_data.width, FILLER))

    if layout.optional_data_check is not None:
        data = get(layout.optional_data)
        put(layout.optional_data_check, FILLER if set(data) == {FILLER} else check_digit(data))
    if layout.optional_data_2 is not None:
        width = layout.optional_data_2.width
        data_2 = _optional_text(optional_data_2, width, "optional data 2")
        put(layout.optional_data_2, data_2.ljust(width, FILLER))
    elif optional_data_2:
        raise ValueError(f"{layout.fmt.value} has no second optional data field")
    if layout.composite_check is not None:
        put(layout.composite_check, check_digit("".join(get(span) for span in layout.composite)))
    return tuple("".join(row) for row in grid)
