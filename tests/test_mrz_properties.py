"""Properties of the MRZ module: building then parsing is the identity, check digits catch exactly the
substitutions their arithmetic can see, and OCR correction never changes anything silently."""

from __future__ import annotations

import json
import string
from collections import defaultdict
from datetime import date
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from kiosk.documents.mrz import Mrz, MrzFormat, NotAnMrz, check_digit, format_mrz, parse_mrz
from kiosk.documents.mrz_ocr import LETTER_TO_DIGIT, as_digit

TODAY = date(2024, 6, 1)
LETTERS = string.ascii_uppercase
ALNUM = string.digits + LETTERS
MRZ_CHARS = ALNUM + "<"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def value(ch: str) -> int:
    return 0 if ch == "<" else ALNUM.index(ch)


# Independent description of the zones (0-based line, start, stop; check-digit cell), from Doc 9303.
_TWO_LINE = {
    "document_number": ([(1, 0, 9)], (1, 9)),
    "birth_date": ([(1, 13, 19)], (1, 19)),
    "expiry_date": ([(1, 21, 27)], (1, 27)),
}
CHECKS: dict[MrzFormat, dict[str, tuple[list[tuple[int, int, int]], tuple[int, int]]]] = {
    MrzFormat.TD1: {
        "document_number": ([(0, 5, 14)], (0, 14)),
        "birth_date": ([(1, 0, 6)], (1, 6)),
        "expiry_date": ([(1, 8, 14)], (1, 14)),
        "composite": ([(0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 29)], (1, 29)),
    },
    MrzFormat.TD2: {**_TWO_LINE, "composite": ([(1, 0, 10), (1, 13, 20), (1, 21, 35)], (1, 35))},
    MrzFormat.TD3: {
        **_TWO_LINE,
        "optional_data": ([(1, 28, 42)], (1, 42)),
        "composite": ([(1, 0, 10), (1, 13, 20), (1, 21, 43)], (1, 43)),
    },
    MrzFormat.MRVA: dict(_TWO_LINE),
    MrzFormat.MRVB: dict(_TWO_LINE),
}
NAMES_WIDTH = {
    MrzFormat.TD1: 30,
    MrzFormat.TD2: 31,
    MrzFormat.TD3: 39,
    MrzFormat.MRVA: 39,
    MrzFormat.MRVB: 31,
}
OPTIONAL_WIDTH = {
    MrzFormat.TD1: 15,
    MrzFormat.TD2: 7,
    MrzFormat.TD3: 14,
    MrzFormat.MRVA: 16,
    MrzFormat.MRVB: 8,
}
FIRST_LETTERS = {
    MrzFormat.TD1: "ACI",
    MrzFormat.TD2: "ACI",
    MrzFormat.TD3: "P",
    MrzFormat.MRVA: "V",
    MrzFormat.MRVB: "V",
}


def coverage(
    fmt: MrzFormat,
) -> tuple[dict[tuple[int, int], list[tuple[str, int]]], dict[tuple[int, int], str]]:
    """Per data cell, the (check, weight) pairs that cover it; and the check-digit cells by check name."""
    covered: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)
    digits: dict[tuple[int, int], str] = {}
    for name, (spans, digit_cell) in CHECKS[fmt].items():
        index = 0
        for line, start, stop in spans:
            for col in range(start, stop):
                covered[(line, col)].append((name, (7, 3, 1)[index % 3]))
                index += 1
        digits[digit_cell] = name
    for cell in digits:
        covered.pop(cell, None)
    return dict(covered), digits


def field_of(fmt: MrzFormat, cell: tuple[int, int]) -> str | None:
    for name, (spans, _) in CHECKS[fmt].items():
        if name != "composite" and any(
            line == cell[0] and start <= cell[1] < stop for line, start, stop in spans
        ):
            return name
    return None


words = st.text(LETTERS, min_size=1, max_size=10)


def optional_text(max_size: int) -> st.SearchStrategy[str]:
    # Trailing fillers are padding, not data: the parser strips them.
    return st.text(MRZ_CHARS, max_size=max(max_size, 0)).map(lambda s: s.rstrip("<"))


@st.composite
def documents(draw: st.DrawFn, long_numbers: bool = True) -> dict[str, Any]:
    fmt = draw(st.sampled_from(list(MrzFormat)))
    surname = " ".join(draw(st.lists(words, min_size=1, max_size=3)))
    given_names = " ".join(draw(st.lists(words, min_size=0, max_size=3)))
    name_length = len(surname) + (2 + len(given_names) if given_names else 0)
    assume(name_length <= NAMES_WIDTH[fmt])
    width = OPTIONAL_WIDTH[fmt]
    max_number = 9
    if long_numbers and fmt in (MrzFormat.TD1, MrzFormat.TD2):
        max_number = 9 + width - 1  # the continuation and its check digit fill the optional field
    number = draw(st.text(ALNUM, min_size=1, max_size=max_number))
    room = width if len(number) <= 9 else width - (len(number) - 9) - 2  # continuation, digit, filler
    optional = draw(optional_text(room))
    fields: dict[str, Any] = {
        "document_code": draw(st.sampled_from(FIRST_LETTERS[fmt])) + draw(st.sampled_from(LETTERS + "<")),
        "issuing_state": draw(st.text(LETTERS, min_size=1, max_size=3)),
        "surname": surname,
        "given_names": given_names,
        "document_number": number,
        "nationality": draw(st.text(LETTERS, min_size=1, max_size=3)),
        "birth_date": draw(st.dates(min_value=date(TODAY.year - 99, 1, 1), max_value=TODAY)),
        "expiry_date": draw(st.dates(min_value=date(1974, 6, 1), max_value=date(2074, 5, 31))),
        "sex": draw(st.sampled_from("MFX")),
        "optional_data": optional,
        "optional_data_2": draw(optional_text(11)) if fmt is MrzFormat.TD1 else "",
    }
    return {"fmt": fmt, **fields, "name_length": name_length}


def build(doc: dict[str, Any]) -> tuple[str, ...]:
    fields = {k: v for k, v in doc.items() if k not in ("fmt", "name_length")}
    return format_mrz(doc["fmt"], **fields)


def substitute(lines: tuple[str, ...], cell: tuple[int, int], ch: str) -> tuple[str, ...]:
    line, col = cell
    out = list(lines)
    out[line] = out[line][:col] + ch + out[line][col + 1 :]
    return tuple(out)


def silent_changes(before: tuple[str, ...], after: tuple[str, ...], reported: int) -> int:
    changed = sum(a != b for a, b in zip("".join(before), "".join(after), strict=True))
    return changed - reported


def proven(mrz: Mrz) -> int:
    """Corrections applied to the reading: probable repairs are reported but not applied."""
    return sum(c.proven for c in mrz.corrections)


# --- check digits --------------------------------------------------------------------------------


@given(st.text(MRZ_CHARS, max_size=40))
def test_check_digit_matches_the_definition(text: str) -> None:
    assert check_digit(text) == str(sum(value(ch) * (7, 3, 1)[i % 3] for i, ch in enumerate(text)) % 10)
    assert check_digit(text + "<<<") == check_digit(text)  # fillers weigh nothing


@given(st.text(MRZ_CHARS, min_size=1, max_size=40), st.data())
def test_single_change_changes_check_digit_iff_delta_times_weight_not_multiple_of_ten(
    text: str, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(text) - 1))
    new = data.draw(st.sampled_from(MRZ_CHARS).filter(lambda c: c != text[index]))
    delta, weight = value(new) - value(text[index]), (7, 3, 1)[index % 3]
    changed = check_digit(text[:index] + new + text[index + 1 :]) != check_digit(text)
    assert changed == ((delta * weight) % 10 != 0)
    # The weights 7, 3, 1 are all coprime to 10, so this is the same as Δ not being a multiple of 10:
    # 0↔A↔K↔U, 1↔B↔L↔V, …, and 0↔< are the blind spots.
    assert changed == (delta % 10 != 0)


# --- build → parse -------------------------------------------------------------------------------


@SETTINGS
@given(documents())
def test_format_then_parse_is_the_identity(doc: dict[str, Any]) -> None:
    fmt = doc["fmt"]
    lines = build(doc)
    assert len(lines) == (3 if fmt is MrzFormat.TD1 else 2)
    assert len({len(line) for line in lines}) == 1
    mrz = parse_mrz(lines, today=TODAY)
    assert mrz.valid, mrz.errors
    assert mrz.corrections == ()
    assert mrz.lines == lines
    assert mrz.format is fmt
    assert mrz.document_code == doc["document_code"].rstrip("<")
    assert (mrz.issuing_state, mrz.nationality) == (doc["issuing_state"], doc["nationality"])
    assert (mrz.surname, mrz.given_names) == (doc["surname"], doc["given_names"])
    assert mrz.document_number == doc["document_number"]
    assert (mrz.birth_date, mrz.expiry_date, mrz.sex) == (doc["birth_date"], doc["expiry_date"], doc["sex"])
    assert (mrz.optional_data, mrz.optional_data_2) == (doc["optional_data"], doc["optional_data_2"])
    # A name that exactly fills the field is indistinguishable from a cut one, by ICAO's design.
    assert mrz.names_truncated == (doc["name_length"] == NAMES_WIDTH[fmt])
    assert parse_mrz("\n".join(line.lower() for line in lines), today=TODAY) == mrz
    assert all(mrz.checks.values()) and set(mrz.checks) >= {"document_number", "birth_date", "expiry_date"}


# --- single substitutions ------------------------------------------------------------------------


@SETTINGS
@given(documents(long_numbers=False), st.data())
def test_substitution_in_checked_data_is_caught_exactly_when_the_arithmetic_sees_it(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    fmt = doc["fmt"]
    lines = build(doc)
    covered, _ = coverage(fmt)
    cell = data.draw(st.sampled_from(sorted(covered)))
    old = lines[cell[0]][cell[1]]
    new = data.draw(st.sampled_from(MRZ_CHARS).filter(lambda c: c != old))
    delta = value(new) - value(old)
    by_weights = any((delta * weight) % 10 != 0 for _, weight in covered[cell])
    # An unused TD3 personal number has "<" for its check digit, which any non-filler then contradicts.
    empty_personal_number = fmt is MrzFormat.TD3 and lines[1][28:43] == "<" * 15 and cell[1] in range(28, 42)
    detectable = by_weights or empty_personal_number
    field = field_of(fmt, cell)

    corrupted = substitute(lines, cell, new)
    mrz = parse_mrz(corrupted, today=TODAY)
    assert silent_changes(corrupted, mrz.lines, proven(mrz)) == 0

    event(f"{field or 'composite only'}, {'detectable' if detectable else 'blind'}, valid={mrz.valid}")
    if field in ("birth_date", "expiry_date"):
        # Numeric-only: only a letter whose one digit twin is the original can be read back.
        restorable = LETTER_TO_DIGIT.get(new) == old
        assert mrz.valid == restorable
        assert (mrz.lines == lines) == restorable
        return
    if detectable:
        # Never valid: a check fails, and a document-number repair is at most offered beside it.
        assert not mrz.valid
    else:
        # Invisible by design: every check digit still agrees, and nothing is "corrected".
        assert all(mrz.checks.values())
        assert mrz.corrections == ()
        # ... except that a number turned into nothing but fillers is no number at all.
        line, start, stop = CHECKS[fmt]["document_number"][0][0]
        emptied = field == "document_number" and set(corrupted[line][start:stop]) == {"<"}
        assert mrz.valid != emptied


@SETTINGS
@given(documents(long_numbers=False), st.data())
def test_substitution_of_a_check_digit_is_caught_or_reported(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    fmt = doc["fmt"]
    lines = build(doc)
    _, digits = coverage(fmt)
    cell = data.draw(st.sampled_from(sorted(digits)))
    old = lines[cell[0]][cell[1]]
    new = data.draw(st.sampled_from(MRZ_CHARS).filter(lambda c: c != old))
    corrupted = substitute(lines, cell, new)
    mrz = parse_mrz(corrupted, today=TODAY)
    assert silent_changes(corrupted, mrz.lines, proven(mrz)) == 0

    name = digits[cell]
    event(f"{name} check digit, valid={mrz.valid}, corrected={bool(mrz.corrections)}")
    if name == "optional_data" and set(lines[1][28:42]) == {"<"}:
        # "<" and "0" are both ICAO's check digit for an unused personal number (O, D, Q read as 0).
        assert mrz.valid == (as_digit(new) == "0")
        return
    if name == "document_number" and fmt in (MrzFormat.TD1, MrzFormat.TD2) and (old, new) == ("0", "<"):
        # Blind spot of the ICAO long-number scheme: "<" here announces a continuation in the
        # optional data, weighs the same as 0 in the composite, and the optional data may happen to
        # read as a continuation plus a matching check digit. Then the number reads differently.
        assert not mrz.valid or mrz.document_number != doc["document_number"]
        return
    if LETTER_TO_DIGIT.get(new) == old:
        assert mrz.valid and mrz.lines == lines
        assert [(c.field, c.original, c.corrected) for c in mrz.corrections] == [
            (f"{name}_check_digit", new, old)
        ]
        return
    assert not mrz.valid


# --- arbitrary input -----------------------------------------------------------------------------

shapes = st.sampled_from([(3, 30), (2, 36), (2, 44)])


@st.composite
def zone_shaped(draw: st.DrawFn) -> tuple[str, ...]:
    count, width = draw(shapes)
    # Bias towards characters OCR confuses so the correction paths run often.
    alphabet = st.sampled_from(MRZ_CHARS) | st.sampled_from("0OQD1I2Z5S6G8B<")
    return tuple("".join(draw(st.lists(alphabet, min_size=width, max_size=width))) for _ in range(count))


@st.composite
def damaged_documents(draw: st.DrawFn) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lines = build(draw(documents()))
    damaged = lines
    for _ in range(draw(st.integers(1, 3))):
        line = draw(st.integers(0, len(lines) - 1))
        col = draw(st.integers(0, len(lines[0]) - 1))
        old = damaged[line][col]
        twins = "".join(
            sorted({LETTER_TO_DIGIT.get(old, "")} | {k for k, v in LETTER_TO_DIGIT.items() if v == old})
        )
        new = draw(st.sampled_from(twins or MRZ_CHARS))
        damaged = substitute(damaged, (line, col), new)
    return lines, damaged


def _is_confusion(a: str, b: str) -> bool:
    return LETTER_TO_DIGIT.get(a) == b or LETTER_TO_DIGIT.get(b) == a


@SETTINGS
@given(zone_shaped() | damaged_documents().map(lambda pair: pair[1]))
def test_any_zone_shaped_input_parses_and_every_change_is_reported(lines: tuple[str, ...]) -> None:
    mrz = parse_mrz(lines, today=TODAY)
    assert silent_changes(lines, mrz.lines, proven(mrz)) == 0
    for correction in mrz.corrections:
        assert _is_confusion(correction.original, correction.corrected), correction
        assert correction.proven or correction.field.startswith("document_number"), correction
    assert mrz.valid == (all(mrz.checks.values()) and not mrz.errors)
    probable = [c for c in mrz.corrections if not c.proven]
    if mrz.repaired is None:
        assert probable == []
    else:
        # A probable repair never makes the zone as read valid; the repaired reading applies exactly it.
        assert probable and not mrz.valid and mrz.repaired.repaired is None
        # (a composite check digit read as a letter may then be proven too)
        assert silent_changes(lines, mrz.repaired.lines, len(mrz.repaired.corrections)) == 0
        assert set(mrz.corrections) <= set(mrz.repaired.corrections)
    assert mrz.sex in ("M", "F", "X")
    encoded = json.dumps(mrz.to_json())
    assert "\n" not in encoded


@given(st.one_of(st.text(), st.lists(st.text(), max_size=5)))
def test_arbitrary_text_is_an_mrz_or_refused_with_a_one_line_reason(text: str | list[str]) -> None:
    try:
        mrz = parse_mrz(text, today=TODAY)
    except NotAnMrz as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert mrz.format in MrzFormat
