"""ICAO 9303 MRZ parsing, validation, building and OCR correction: worked examples."""

from __future__ import annotations

import time
from datetime import date

import pytest

from kiosk.documents.mrz import Correction, Mrz, MrzFormat, NotAnMrz, check_digit, format_mrz, parse_mrz

TODAY = date(2024, 6, 1)

TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
)
TD2 = (
    "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<",
    "D231458907UTO7408122F1204159<<<<<<<6",
)
MRVA = (
    "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L8988901C4XXX4009078F96121096ZE184226B<<<<<<",
)
MRVB = (
    "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<",
    "L8988901C4XXX4009078F9612109<<<<<<<<",
)

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def ref_cd(value: str) -> str:
    """Independent ICAO check digit: index in 0-9A-Z is the value, '<' is 0, weights 7 3 1."""
    return str(
        sum((0 if ch == "<" else _ALNUM.index(ch)) * (7, 3, 1)[i % 3] for i, ch in enumerate(value)) % 10
    )


def sub(line: str, index: int, text: str) -> str:
    return line[:index] + text + line[index + len(text) :]


def td3_line2(number: str, birth: str, expiry: str, *, nationality: str = "UTO", sex: str = "F") -> str:
    """A TD3 second line with every check digit computed by the independent reference."""
    head = number.ljust(9, "<") + ref_cd(number.ljust(9, "<")) + nationality
    body = birth + ref_cd(birth) + sex + expiry + ref_cd(expiry) + "<" * 14 + "<"
    line = head + body
    composite = line[0:10] + line[13:20] + line[21:43]
    return line + ref_cd(composite)


def parse(lines: tuple[str, ...] | list[str] | str) -> Mrz:
    return parse_mrz(lines, today=TODAY)


def fixes(mrz: Mrz) -> list[tuple[str, int, str, str]]:
    return [(c.field, c.position, c.original, c.corrected) for c in mrz.corrections]


# --- check digits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "digit"),
    [
        ("L898902C3", "6"),
        ("740812", "2"),
        ("120415", "9"),
        ("ZE184226B<<<<<", "1"),
        ("L898902C36" + "7408122" + "1204159ZE184226B<<<<<1", "0"),
        ("D23145890", "7"),
        ("L8988901C", "4"),
        ("400907", "8"),
        ("961210", "9"),
        ("", "0"),
        ("<<<<", "0"),
    ],
)
def test_check_digit_known_values(value: str, digit: str) -> None:
    assert ref_cd(value) == digit
    assert check_digit(value) == digit


@pytest.mark.parametrize("value", ["abc", "A B", "É", "-"])
def test_check_digit_rejects_non_mrz_characters(value: str) -> None:
    with pytest.raises(ValueError):
        check_digit(value)


def test_specimen_check_digits_verified_by_hand() -> None:
    # TD1: composite over line 1 6–30, line 2 1–7, 9–15, 19–29.
    assert ref_cd(TD1[0][5:14]) == TD1[0][14] == "7"
    assert ref_cd(TD1[0][5:30] + TD1[1][0:7] + TD1[1][8:15] + TD1[1][18:29]) == TD1[1][29] == "6"
    # TD2: composite over 1–10, 14–20, 22–35.
    assert ref_cd(TD2[1][0:10] + TD2[1][13:20] + TD2[1][21:35]) == TD2[1][35] == "6"
    # TD3: composite over 1–10, 14–20, 22–43.
    assert ref_cd(TD3[1][0:10] + TD3[1][13:20] + TD3[1][21:43]) == TD3[1][43] == "0"
    for visa in (MRVA, MRVB):
        line = visa[1]
        assert ref_cd(line[0:9]) == line[9]
        assert ref_cd(line[13:19]) == line[19]
        assert ref_cd(line[21:27]) == line[27]


# --- specimens -----------------------------------------------------------------------------------


def test_td3_specimen() -> None:
    mrz = parse(TD3)
    assert mrz.format is MrzFormat.TD3
    assert (mrz.document_code, mrz.issuing_state, mrz.nationality) == ("P", "UTO", "UTO")
    assert (mrz.surname, mrz.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert mrz.document_number == "L898902C3"
    assert mrz.birth_date == date(1974, 8, 12)
    assert mrz.expiry_date == date(2012, 4, 15)
    assert mrz.sex == "F"
    assert (mrz.optional_data, mrz.optional_data_2) == ("ZE184226B", "")
    assert mrz.checks == {
        "document_number": True,
        "birth_date": True,
        "expiry_date": True,
        "optional_data": True,
        "composite": True,
    }
    assert mrz.valid and mrz.errors == () and mrz.corrections == ()
    assert not mrz.names_truncated
    assert mrz.lines == TD3


def test_td1_specimen() -> None:
    mrz = parse(TD1)
    assert mrz.format is MrzFormat.TD1
    assert (mrz.document_code, mrz.issuing_state, mrz.nationality) == ("I", "UTO", "UTO")
    assert (mrz.surname, mrz.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert mrz.document_number == "D23145890"
    assert (mrz.birth_date, mrz.expiry_date, mrz.sex) == (date(1974, 8, 12), date(2012, 4, 15), "F")
    assert (mrz.optional_data, mrz.optional_data_2) == ("", "")
    assert mrz.checks == {"document_number": True, "birth_date": True, "expiry_date": True, "composite": True}
    assert mrz.valid


def test_td2_specimen() -> None:
    mrz = parse(TD2)
    assert mrz.format is MrzFormat.TD2
    assert mrz.document_number == "D23145890"
    assert (mrz.surname, mrz.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert (mrz.birth_date, mrz.expiry_date) == (date(1974, 8, 12), date(2012, 4, 15))
    assert mrz.checks == {"document_number": True, "birth_date": True, "expiry_date": True, "composite": True}
    assert mrz.valid


def test_mrv_a_specimen() -> None:
    mrz = parse(MRVA)
    assert mrz.format is MrzFormat.MRVA
    assert (mrz.document_code, mrz.issuing_state, mrz.nationality) == ("V", "UTO", "XXX")
    assert mrz.document_number == "L8988901C"
    assert (mrz.birth_date, mrz.expiry_date) == (date(1940, 9, 7), date(1996, 12, 10))
    assert mrz.optional_data == "6ZE184226B"
    assert mrz.checks == {"document_number": True, "birth_date": True, "expiry_date": True}
    assert mrz.valid


def test_mrv_b_specimen() -> None:
    mrz = parse(MRVB)
    assert mrz.format is MrzFormat.MRVB
    assert mrz.document_number == "L8988901C"
    assert mrz.optional_data == ""
    assert mrz.checks == {"document_number": True, "birth_date": True, "expiry_date": True}
    assert mrz.valid


def test_visa_is_told_apart_from_passport_by_document_code_only() -> None:
    assert parse((sub(TD3[0], 0, "V"), TD3[1])).format is MrzFormat.MRVA
    assert parse((sub(TD2[0], 0, "V"), TD2[1])).format is MrzFormat.MRVB


# --- building ------------------------------------------------------------------------------------

_ANNA = dict(
    issuing_state="UTO",
    surname="Eriksson",
    given_names="Anna Maria",
    nationality="UTO",
    birth_date=date(1974, 8, 12),
    expiry_date=date(2012, 4, 15),
    sex="F",
)


def test_format_reproduces_specimens() -> None:
    assert (
        format_mrz(
            MrzFormat.TD3, document_code="P", document_number="L898902C3", optional_data="ZE184226B", **_ANNA
        )
        == TD3
    )
    assert format_mrz(MrzFormat.TD1, document_code="I", document_number="D23145890", **_ANNA) == TD1
    assert format_mrz(MrzFormat.TD2, document_code="I", document_number="D23145890", **_ANNA) == TD2
    visa = {**_ANNA, "nationality": "XXX", "birth_date": date(1940, 9, 7), "expiry_date": date(1996, 12, 10)}
    assert (
        format_mrz(
            MrzFormat.MRVA, document_code="V", document_number="L8988901C", optional_data="6ZE184226B", **visa
        )
        == MRVA
    )
    assert format_mrz(MrzFormat.MRVB, document_code="V", document_number="L8988901C", **visa) == MRVB


@pytest.mark.parametrize("fmt", list(MrzFormat))
def test_generated_document_of_every_format_parses_back(fmt: MrzFormat) -> None:
    code = {"TD1": "AC", "TD2": "C", "TD3": "PM", "MRVA": "VB", "MRVB": "V"}[fmt.value]
    lines = format_mrz(
        fmt,
        document_code=code,
        issuing_state="D",
        surname="van der Berg-Smith",
        given_names="Ana Lu",
        document_number="X12345",
        nationality="IDN",
        birth_date=date(2001, 2, 28),
        expiry_date=date(2031, 2, 27),
        sex="X",
        optional_data="AB12",
        optional_data_2="Z9" if fmt is MrzFormat.TD1 else "",
    )
    width = {"TD1": 30, "TD2": 36, "MRVB": 36}.get(fmt.value, 44)
    assert all(len(line) == width for line in lines)
    mrz = parse(lines)
    assert mrz.valid, mrz.errors
    assert mrz.format is fmt
    assert mrz.document_code == code
    assert (mrz.issuing_state, mrz.nationality) == ("D", "IDN")
    assert (mrz.surname, mrz.given_names) == ("VAN DER BERG SMITH", "ANA LU")
    assert mrz.document_number == "X12345"
    assert (mrz.birth_date, mrz.expiry_date, mrz.sex) == (date(2001, 2, 28), date(2031, 2, 27), "X")
    assert mrz.optional_data == "AB12"
    assert mrz.optional_data_2 == ("Z9" if fmt is MrzFormat.TD1 else "")
    assert "D<<" in lines[0]


def test_format_names_drop_apostrophes_and_truncate() -> None:
    lines = format_mrz(
        MrzFormat.TD2, document_code="I", document_number="1", **{**_ANNA, "surname": "O'Neil"}
    )
    assert lines[0].startswith("I<UTOONEIL<<ANNA<MARIA<")
    long_name = {**_ANNA, "surname": "Abcdefghijklmnopqrstuvwxyz", "given_names": "Maximiliana"}
    lines = format_mrz(MrzFormat.TD2, document_code="I", document_number="1", **long_name)
    assert lines[0][5:] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ<<MAX"
    mrz = parse(lines)
    assert mrz.names_truncated
    assert (mrz.surname, mrz.given_names) == ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "MAX")


def test_truncation_on_a_word_boundary_drops_whole_names() -> None:
    # 24 + "<<" + "ANNA" fills 30 of 31 positions; the cut lands on the filler before MARIA, which
    # is dropped whole, and nothing in the zone suggests a cut name.
    name = {**_ANNA, "surname": "Abcdefghijklmnopqrstuvwx", "given_names": "Anna Maria"}
    lines = format_mrz(MrzFormat.TD2, document_code="I", document_number="1", **name)
    assert lines[0][5:] == "ABCDEFGHIJKLMNOPQRSTUVWX<<ANNA<"
    mrz = parse(lines)
    assert (mrz.given_names, mrz.names_truncated) == ("ANNA", False)


@pytest.mark.parametrize(
    ("fmt", "changes"),
    [
        (MrzFormat.TD3, {"document_code": "I"}),
        (MrzFormat.TD2, {"document_code": "V"}),
        (MrzFormat.MRVA, {"document_code": "P"}),
        (MrzFormat.TD3, {"document_code": ""}),
        (MrzFormat.TD3, {"document_code": "P1"}),
        (MrzFormat.TD3, {"issuing_state": "UTOP"}),
        (MrzFormat.TD3, {"nationality": "U1"}),
        (MrzFormat.TD3, {"issuing_state": ""}),
        (MrzFormat.TD3, {"surname": "Müller"}),
        (MrzFormat.TD3, {"surname": "Smith, John"}),
        (MrzFormat.TD3, {"surname": ""}),
        (MrzFormat.TD3, {"surname": " - "}),
        (MrzFormat.TD3, {"given_names": "Zoë"}),
        (MrzFormat.TD3, {"sex": "Q"}),
        (MrzFormat.TD3, {"sex": ""}),
        (MrzFormat.TD3, {"document_number": ""}),
        (MrzFormat.TD3, {"document_number": "AB-123"}),
        (MrzFormat.TD3, {"document_number": "AB<123"}),
        (MrzFormat.TD3, {"document_number": "L898902C3X"}),
        (MrzFormat.MRVB, {"document_number": "L898902C3X"}),
        (MrzFormat.TD1, {"document_number": "A" * 24}),
        (MrzFormat.TD2, {"document_number": "A" * 16}),
        (MrzFormat.TD2, {"document_number": "A" * 12, "optional_data": "XYZ"}),
        (MrzFormat.TD3, {"optional_data": "A" * 15}),
        (MrzFormat.TD3, {"optional_data": "A B"}),
        (MrzFormat.TD3, {"optional_data_2": "A"}),
        (MrzFormat.TD1, {"optional_data_2": "A" * 12}),
    ],
)
def test_format_rejects_unrepresentable_input(fmt: MrzFormat, changes: dict[str, str]) -> None:
    code = {MrzFormat.TD3: "P", MrzFormat.MRVA: "V", MrzFormat.MRVB: "V"}.get(fmt, "I")
    fields = {**_ANNA, "document_code": code, "document_number": "L898902C3"}
    with pytest.raises(ValueError):
        format_mrz(fmt, **{**fields, **changes})


def test_format_accepts_padded_and_lowercase_codes() -> None:
    lines = format_mrz(
        MrzFormat.TD3, document_code="p<", document_number="l898902c3", **{**_ANNA, "nationality": "d<<"}
    )
    assert parse(lines).nationality == "D"
    assert lines[1].startswith("L898902C36D<<")


# --- long document numbers (TD1/TD2) -------------------------------------------------------------


def test_td1_long_document_number_layout_and_parse() -> None:
    lines = format_mrz(
        MrzFormat.TD1,
        document_code="I",
        document_number="D23145890AB1",
        optional_data="XYZ",
        optional_data_2="Q1",
        **_ANNA,
    )
    number_digit = ref_cd("D23145890AB1")
    assert lines[0] == "I<UTOD23145890<AB1" + number_digit + "<XYZ" + "<" * 7
    assert lines[1][29] == ref_cd(lines[0][5:30] + lines[1][0:7] + lines[1][8:15] + lines[1][18:29])
    mrz = parse(lines)
    assert mrz.valid, mrz.errors
    assert mrz.document_number == "D23145890AB1"
    assert (mrz.optional_data, mrz.optional_data_2) == ("XYZ", "Q1")


def test_td1_long_number_filling_the_whole_optional_field() -> None:
    number = "D23145890" + "ABCDEFGHIJKLMN"  # 9 + 14 continuation + check digit = 15 positions
    lines = format_mrz(MrzFormat.TD1, document_code="I", document_number=number, **_ANNA)
    assert lines[0][15:] == "ABCDEFGHIJKLMN" + ref_cd(number)
    mrz = parse(lines)
    assert mrz.valid and mrz.document_number == number and mrz.optional_data == ""


def test_td2_long_document_number() -> None:
    lines = format_mrz(MrzFormat.TD2, document_code="I", document_number="D23145890AB", **_ANNA)
    assert lines[1][:10] == "D23145890<"
    assert lines[1][28:35] == "AB" + ref_cd("D23145890AB") + "<<<<"
    mrz = parse(lines)
    assert mrz.valid and mrz.document_number == "D23145890AB"


def test_long_number_check_digit_failure_is_reported() -> None:
    lines = format_mrz(MrzFormat.TD1, document_code="I", document_number="D23145890AB1", **_ANNA)
    digit = lines[0][18]
    broken = sub(lines[0], 18, str((int(digit) + 1) % 10))
    mrz = parse((broken, *lines[1:]))
    assert mrz.checks["document_number"] is False
    assert "check digit of document_number fails" in mrz.errors
    assert not mrz.valid


def test_filler_check_digit_without_continuation_fails() -> None:
    line = "I<UTOD23145890<<<<<<<<<<<<<<<<"
    line2 = TD1[1][:29] + ref_cd(line[5:30] + TD1[1][0:7] + TD1[1][8:15] + TD1[1][18:29])
    mrz = parse((line, line2, TD1[2]))
    assert mrz.checks["document_number"] is False
    assert mrz.checks["composite"] is True
    assert not mrz.valid


def test_short_number_with_filler_check_digit_is_not_a_long_number() -> None:
    line = sub(TD1[0], 5, "D2314<<<<<")
    mrz = parse((line, *TD1[1:]))
    assert mrz.document_number == "D2314"
    assert mrz.checks["document_number"] is False


# --- fields --------------------------------------------------------------------------------------


def test_unspecified_sex_filler_reads_as_x() -> None:
    mrz = parse((TD3[0], sub(TD3[1], 20, "<")))
    assert mrz.sex == "X"
    assert mrz.valid  # sex is outside every check digit


def test_invalid_sex_is_an_error() -> None:
    mrz = parse((TD3[0], sub(TD3[1], 20, "Q")))
    assert mrz.sex == "X"
    assert "invalid sex 'Q'" in mrz.errors
    assert not mrz.valid


def test_one_letter_state_codes() -> None:
    lines = (sub(TD3[0], 2, "D<<"), sub(TD3[1], 10, "D<<"))
    mrz = parse(lines)
    assert (mrz.issuing_state, mrz.nationality) == ("D", "D")
    assert mrz.valid


@pytest.mark.parametrize("code", ["<<<", "<UT", "U<T"])
def test_malformed_state_codes_are_errors(code: str) -> None:
    mrz = parse((sub(TD3[0], 2, code), TD3[1]))
    assert any("issuing state" in error for error in mrz.errors)
    assert not mrz.valid


def test_unexpected_document_code_is_an_error_not_a_rejection() -> None:
    mrz = parse((sub(TD3[0], 0, "X"), TD3[1]))
    assert mrz.format is MrzFormat.TD3
    assert any("document code" in error for error in mrz.errors)


def test_names_without_given_names_and_truncation_mark() -> None:
    mrz = parse((sub(TD3[0], 5, "ERIKSSON" + "<" * 31), TD3[1]))
    assert (mrz.surname, mrz.given_names, mrz.names_truncated) == ("ERIKSSON", "", False)
    full = "ERIKSSON<<ANNA<MARIA<BERNADETTE<CHRISTI"
    assert len(full) == 39
    mrz = parse((sub(TD3[0], 5, full), TD3[1]))
    assert (mrz.given_names, mrz.names_truncated) == ("ANNA MARIA BERNADETTE CHRISTI", True)


def test_empty_name_field_is_an_error() -> None:
    mrz = parse((sub(TD3[0], 5, "<" * 39), TD3[1]))
    assert "empty name field" in mrz.errors


def test_td3_personal_number_check_digit_may_be_filler_only_when_unused() -> None:
    line = td3_line2("L898902C3", "740812", "120415")
    assert line[28:43] == "<" * 15
    assert parse((TD3[0], line)).checks["optional_data"] is True
    zero = sub(line, 42, "0")
    zero = zero[:43] + ref_cd(zero[0:10] + zero[13:20] + zero[21:43])
    assert parse((TD3[0], zero)).valid
    used = sub(line, 28, "AB1")
    used = used[:43] + ref_cd(used[0:10] + used[13:20] + used[21:43])
    mrz = parse((TD3[0], used))
    assert mrz.checks["optional_data"] is False
    assert mrz.checks["composite"] is True


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("240601", date(2024, 6, 1)),  # born today: not in the future
        ("240602", date(1924, 6, 2)),  # tomorrow would be the future, so the previous century
        ("991231", date(1999, 12, 31)),
        ("000229", date(2000, 2, 29)),
        ("250101", date(1925, 1, 1)),
    ],
)
def test_birth_century_is_the_most_recent_past(text: str, expected: date) -> None:
    mrz = parse((TD3[0], td3_line2("L898902C3", text, "300101")))
    assert mrz.birth_date == expected
    assert mrz.valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("740601", date(1974, 6, 1)),  # window opens today − 50 years (inclusive)
        ("740531", date(2074, 5, 31)),  # the day before the window: next century
        ("740602", date(1974, 6, 2)),
        ("740701", date(1974, 7, 1)),
        ("240601", date(2024, 6, 1)),
        ("300101", date(2030, 1, 1)),
        ("991231", date(1999, 12, 31)),
    ],
)
def test_expiry_century_window(text: str, expected: date) -> None:
    mrz = parse((TD3[0], td3_line2("L898902C3", "740812", text)))
    assert mrz.expiry_date == expected
    assert mrz.valid


def test_expiry_window_with_a_leap_day_today() -> None:
    mrz = parse_mrz((TD3[0], td3_line2("L898902C3", "740812", "740228")), today=date(2024, 2, 29))
    assert mrz.expiry_date == date(2074, 2, 28)
    mrz = parse_mrz((TD3[0], td3_line2("L898902C3", "740812", "740229")), today=date(2024, 2, 29))
    assert mrz.expiry_date is None  # (1974, 2, 29) opens the window, and 1974 had no 29 February


@pytest.mark.parametrize(
    ("birth", "message"),
    [
        ("741382", "invalid birth date 741382"),
        ("740800", "invalid birth date 740800"),
        ("970229", "invalid birth date 970229"),
        ("74<812", "invalid birth date 74<812"),
    ],
)
def test_invalid_birth_date_parses_with_an_error(birth: str, message: str) -> None:
    mrz = parse((TD3[0], td3_line2("L898902C3", birth, "300101")))
    assert mrz.checks["birth_date"] is True  # the check digit itself agrees
    assert mrz.birth_date is None
    assert message in mrz.errors
    assert not mrz.valid


def test_invalid_expiry_date() -> None:
    mrz = parse((TD3[0], td3_line2("L898902C3", "740812", "300231")))
    assert mrz.expiry_date is None
    assert "invalid expiry date 300231" in mrz.errors


def test_failed_check_digits_are_named() -> None:
    line = sub(TD3[1], 19, "3")  # birth check digit 2 → 3
    mrz = parse((TD3[0], line))
    assert mrz.checks["birth_date"] is False
    assert mrz.checks["composite"] is False
    assert mrz.birth_date == date(1974, 8, 12)  # still read: the operator sees what the zone says
    assert "check digit of birth_date fails" in mrz.errors
    assert "check digit of composite fails" in mrz.errors
    assert not mrz.valid


# --- OCR corrections -----------------------------------------------------------------------------


def test_letter_in_date_corrected_when_check_digit_agrees() -> None:
    mrz = parse((TD3[0], sub(TD3[1], 15, "O")))  # 740812 read as 74O812
    assert fixes(mrz) == [("birth_date", 2, "O", "0")]
    assert mrz.birth_date == date(1974, 8, 12)
    assert mrz.valid
    assert mrz.lines == TD3


def test_letter_in_date_and_check_digit_corrected_together() -> None:
    mrz = parse((TD3[0], sub(TD3[1], 13, "74O8I2Z")))  # 740812, check digit 2
    assert fixes(mrz) == [
        ("birth_date", 2, "O", "0"),
        ("birth_date", 4, "I", "1"),
        ("birth_date_check_digit", 0, "Z", "2"),
    ]
    assert mrz.valid and mrz.lines == TD3


def test_letter_in_date_refused_when_check_digit_disagrees() -> None:
    line = sub(TD3[1], 15, "S")  # S would read as 5: 745812, whose check digit is 7, not 2
    assert ref_cd("745812") == "7"
    mrz = parse((TD3[0], line))
    assert mrz.corrections == ()
    assert mrz.lines == (TD3[0], line)
    assert mrz.birth_date is None
    assert "invalid birth date 74S812" in mrz.errors
    assert mrz.checks["birth_date"] is False


@pytest.mark.parametrize(
    ("index", "letter", "field"),
    [
        (9, "G", "document_number_check_digit"),
        (19, "Z", "birth_date_check_digit"),
        (42, "I", "optional_data_check_digit"),
        (43, "O", "composite_check_digit"),
    ],
)
def test_letter_in_check_digit_corrected_when_it_then_agrees(index: int, letter: str, field: str) -> None:
    mrz = parse((TD3[0], sub(TD3[1], index, letter)))
    assert fixes(mrz) == [(field, 0, letter, TD3[1][index])]
    assert mrz.valid and mrz.lines == TD3


def test_letter_in_check_digit_refused_when_it_disagrees() -> None:
    mrz = parse((TD3[0], sub(TD3[1], 9, "B")))  # B reads as 8; the document number's digit is 6
    assert mrz.corrections == ()
    assert mrz.checks["document_number"] is False


def test_document_number_repair_is_offered_but_the_zone_as_read_is_invalid() -> None:
    line = sub(TD3[1], 5, "O")  # L898902C3 read as L8989O2C3
    mrz = parse((TD3[0], line))
    # Alphanumeric: O and 0 are both allowed there, so the check digit makes the repair probable, not proven.
    assert [(c.field, c.position, c.original, c.corrected, c.proven) for c in mrz.corrections] == [
        ("document_number", 5, "O", "0", False)
    ]
    assert mrz.document_number == "L8989O2C3" and mrz.lines == (TD3[0], line)
    assert mrz.checks["document_number"] is False and mrz.checks["composite"] is False
    assert not mrz.valid and mrz.valid_if_repaired
    assert mrz.repaired_document_number == "L898902C3"
    assert mrz.repaired is not None and mrz.repaired.lines == TD3 and mrz.repaired.valid


def test_letter_in_document_number_check_digit_is_proven_and_stays_valid() -> None:
    mrz = parse((TD3[0], sub(TD3[1], 9, "G")))  # check digit 6 read as G: only 6 can be meant
    assert [c.proven for c in mrz.corrections] == [True]
    assert mrz.valid and mrz.repaired is None and mrz.repaired_document_number is None


def test_document_number_correction_refused_when_ambiguous() -> None:
    # B at 1 back to 8 (Δ −3 × weight 3 ≡ 1) agrees, and so does 8 at 3 to B (Δ +3 × weight 7 ≡ 1).
    line = sub(TD3[1], 1, "B")
    mrz = parse((TD3[0], line))
    assert mrz.corrections == ()
    assert mrz.document_number == "LB98902C3"
    assert any("ambiguous" in error for error in mrz.errors)
    assert mrz.checks["document_number"] is False
    assert not mrz.valid


def test_document_number_not_fixed_to_match_a_misread_check_digit() -> None:
    # Check digit 6 misread as 0: L8989O2C3 would match 0, but the composite (which covers the
    # check digit) disagrees, so the number is left alone.
    assert ref_cd("L8989O2C3") == "0"
    mrz = parse((TD3[0], sub(TD3[1], 9, "0")))
    assert mrz.corrections == ()
    assert mrz.document_number == "L898902C3"
    assert not mrz.valid


def test_visa_document_number_is_never_corrected() -> None:
    # Without a composite nothing rules out the rival explanation "the check digit was misread":
    # here 4 → 2 would otherwise be "fixed" by reading the number's 0 as O.
    mrz = parse((MRVA[0], sub(MRVA[1], 9, "2")))
    assert mrz.corrections == ()
    assert mrz.document_number == "L8988901C"
    assert any("misread check digit" in error for error in mrz.errors)
    assert not mrz.valid
    mrz = parse((MRVA[0], sub(MRVA[1], 6, "O")))  # a genuine-looking O/0 confusion in the number
    assert mrz.corrections == ()
    assert not mrz.valid


def test_long_number_not_fixed_to_match_a_misread_check_digit() -> None:
    # The continuation sits one position later in the composite than in the number's own check,
    # so here the composite alone cannot tell "B misread" from "check digit misread".
    lines = format_mrz(MrzFormat.TD1, document_code="I", document_number="D23145890AB1", **_ANNA)
    assert lines[0][18] == "1"
    mrz = parse((sub(lines[0], 18, "2"), *lines[1:]))
    assert mrz.corrections == ()
    assert mrz.document_number == "D23145890AB1"
    assert not mrz.valid


def test_long_document_number_repair_offered_in_its_continuation() -> None:
    lines = format_mrz(MrzFormat.TD1, document_code="I", document_number="D23145890A5", **_ANNA)
    broken = sub(lines[0], 16, "S")  # the continuation's 5 read as S
    mrz = parse((broken, *lines[1:]))
    assert fixes(mrz) == [("document_number", 10, "S", "5")]
    assert mrz.document_number == "D23145890AS" and not mrz.valid
    assert mrz.repaired_document_number == "D23145890A5" and mrz.valid_if_repaired


def test_digit_in_name_corrected_when_it_has_one_letter_twin() -> None:
    mrz = parse((sub(TD3[0], 7, "1"), TD3[1]))  # ER1KSSON
    assert fixes(mrz) == [("names", 2, "1", "I")]
    assert mrz.surname == "ERIKSSON"
    assert mrz.valid


def test_zero_in_name_is_ambiguous_and_left_alone() -> None:
    line = sub(TD3[0], 11, "0")  # ERIKSS0N: O, D or Q?
    mrz = parse((line, TD3[1]))
    assert mrz.corrections == ()
    assert mrz.surname == "ERIKSS0N"
    assert any("'0' in names" in error and "ambiguous" in error for error in mrz.errors)
    assert not mrz.valid


def test_digit_in_state_code_corrected_or_refused() -> None:
    lines = format_mrz(
        MrzFormat.TD3, document_code="P", document_number="1", **{**_ANNA, "nationality": "GBR"}
    )
    mrz = parse((lines[0], sub(lines[1], 11, "8")))
    assert fixes(mrz) == [("nationality", 1, "8", "B")]
    assert mrz.nationality == "GBR" and mrz.valid
    mrz = parse((sub(TD3[0], 4, "0"), TD3[1]))  # UT0
    assert mrz.corrections == ()
    assert not mrz.valid


def test_digit_in_document_code_corrected() -> None:
    mrz = parse((sub(TD1[0], 0, "1"), *TD1[1:]))
    assert fixes(mrz) == [("document_code", 0, "1", "I")]
    assert mrz.valid


def test_digits_with_no_letter_twin_are_errors() -> None:
    mrz = parse((sub(TD3[0], 5, "3"), TD3[1]))
    assert "invalid character '3' in names at position 0" in mrz.errors


def test_corrections_are_reflected_in_lines() -> None:
    mrz = parse((sub(TD3[0], 7, "1"), sub(TD3[1], 15, "O")))
    assert mrz.lines == TD3
    assert len(mrz.corrections) == 2
    assert all(isinstance(c, Correction) for c in mrz.corrections)


# --- not an MRZ ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n  \t ",
        TD3[0],
        "\n".join(TD1[:2] + TD1[:2]),
        TD3[0] + "\n" + TD3[1] + "<",
        TD3[0] + "\n" + TD3[1][:-1],
        TD3[0][:-1] + "\n" + TD3[1][:-1],  # 43 + 43 is neither 36 nor 44
        TD1[0] + "\n" + TD1[1] + "\n" + TD1[2] + "<",
        TD1[0][:-1] + "\n" + TD1[1] + "\n" + TD1[2],
        TD2[0] + "\n" + TD3[1],
        TD1[0] + "\n" + TD1[1],  # two 30-character lines
        "\n".join(t + "<<<<<<" for t in TD1),  # three 36-character lines
        TD3[0] + "\n" + sub(TD3[1], 3, " "),
        TD3[0] + "\n" + sub(TD3[1], 3, "-"),
        TD3[0] + "\n" + sub(TD3[1], 3, "é"),
        TD3[0][:-2] + "ß\n" + TD3[1],  # upper() would make this 44 characters
        TD3[0] + "\n" + sub(TD3[1], 3, "«"),
        "hello\nworld",
        "x" * 10_000,
    ],
)
def test_not_an_mrz(text: str) -> None:
    with pytest.raises(NotAnMrz) as info:
        parse(text)
    assert "\n" not in str(info.value)
    assert str(info.value)


def test_not_an_mrz_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse("")


def test_input_normalisation() -> None:
    text = "\n\n   " + TD3[0].lower() + "  \r\n\t\n" + TD3[1] + "   \n\n"
    assert parse(text).lines == TD3
    assert parse(["  " + TD1[0], "", TD1[1].lower(), TD1[2] + " "]).lines == TD1
    assert parse([TD2[0] + "\n" + TD2[1]]).lines == TD2


def test_non_text_lines_are_rejected() -> None:
    with pytest.raises(NotAnMrz):
        parse([TD3[0], 42])  # type: ignore[list-item]


def test_default_today_is_the_current_date() -> None:
    assert parse_mrz(TD3).valid


def test_parse_is_fast() -> None:
    text = "\n".join(TD3)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            parse(text)
        best = min(best, (time.perf_counter() - start) / 200)
    assert best < 1e-3, f"{best * 1e6:.0f} µs per parse"
