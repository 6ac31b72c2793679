"""The ``mrz`` command's contract: stdin in, one JSON line out, exit 0 / 1 / 2."""

from __future__ import annotations

import io
import json
from datetime import date
from typing import Any

import pytest

from kiosk.documents.mrz import check_digit
from kiosk.documents.mrz_cli import run

TODAY = date(2024, 6, 1)
TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10\n"
TD1 = "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<\n"
REQUIRED = {
    "format",
    "document_code",
    "issuing_state",
    "surname",
    "given_names",
    "document_number",
    "nationality",
    "birth_date",
    "expiry_date",
    "sex",
    "optional_data",
    "checks",
    "valid",
    "errors",
}
OPTIONAL = {"corrections", "repaired_document_number", "names_truncated"}


def invoke(text: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(io.StringIO(text), stdout, stderr, today=TODAY)
    return code, stdout.getvalue(), stderr.getvalue()


def one_object(stdout: str) -> dict[str, Any]:
    assert stdout.endswith("\n") and stdout.count("\n") == 1, stdout
    obj = json.loads(stdout)
    assert isinstance(obj, dict)
    return obj


def test_full_contract_for_a_valid_passport() -> None:
    code, stdout, stderr = invoke(TD3)
    assert (code, stderr) == (0, "")
    assert one_object(stdout) == {
        "format": "TD3",
        "document_code": "P",
        "issuing_state": "UTO",
        "surname": "ERIKSSON",
        "given_names": "ANNA MARIA",
        "document_number": "L898902C3",
        "nationality": "UTO",
        "birth_date": "1974-08-12",
        "expiry_date": "2012-04-15",
        "sex": "F",
        "optional_data": "ZE184226B",
        "checks": {
            "document_number": True,
            "birth_date": True,
            "expiry_date": True,
            "optional_data": True,
            "composite": True,
        },
        "valid": True,
        "errors": [],
        "corrections": [],
        "repaired_document_number": None,
        "names_truncated": False,
    }


@pytest.mark.parametrize(
    "text",
    [
        TD3,
        TD1,
        "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6",
        "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL8988901C4XXX4009078F96121096ZE184226B<<<<<<",
        "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL8988901C4XXX4009078F9612109<<<<<<<<",
    ],
)
def test_every_format_has_the_contract_keys_and_types(text: str) -> None:
    code, stdout, stderr = invoke(text)
    assert (code, stderr) == (0, "")
    obj = one_object(stdout)
    assert REQUIRED <= set(obj) <= REQUIRED | OPTIONAL
    assert obj["format"] in {"TD1", "TD2", "TD3", "MRVA", "MRVB"}
    assert obj["sex"] in {"M", "F", "X"}
    for key in ("birth_date", "expiry_date"):
        assert obj[key] is None or date.fromisoformat(obj[key])
    assert all(isinstance(v, bool) for v in obj["checks"].values())
    assert obj["valid"] is True and obj["errors"] == []
    for key in REQUIRED - {"checks", "valid", "errors", "birth_date", "expiry_date"}:
        assert isinstance(obj[key], str)


def test_whitespace_and_blank_lines_around_the_zone_are_ignored() -> None:
    code, stdout, _ = invoke("\n\n   " + TD3.replace("\n", "  \r\n\n\t", 1) + "\n \n")
    assert code == 0
    assert one_object(stdout)["document_number"] == "L898902C3"


def test_failed_check_exits_1_with_the_object() -> None:
    code, stdout, stderr = invoke(TD3.replace("7408122", "7408123"))
    assert (code, stderr) == (1, "")
    obj = one_object(stdout)
    assert obj["valid"] is False
    assert obj["checks"]["birth_date"] is False
    assert "check digit of birth_date fails" in obj["errors"]


def test_invalid_date_exits_1_with_null_date() -> None:
    # Only the month is wrong: the date's own and the composite check digits agree.
    line2 = "L898902C36UTO" + "741382" + check_digit("741382") + "F1204159ZE184226B<<<<<1"
    line2 += check_digit(line2[0:10] + line2[13:20] + line2[21:43])
    code, stdout, _ = invoke(TD3.splitlines()[0] + "\n" + line2)
    obj = one_object(stdout)
    assert code == 1
    assert obj["birth_date"] is None
    assert obj["checks"]["birth_date"] is True
    assert "invalid birth date 741382" in obj["errors"]


def test_corrections_are_listed() -> None:
    code, stdout, _ = invoke(TD3.replace("7408122F", "74O8122F"))
    obj = one_object(stdout)
    assert code == 0
    assert obj["corrections"] == [
        {"field": "birth_date", "position": 2, "original": "O", "corrected": "0", "proven": True}
    ]
    assert obj["repaired_document_number"] is None


def test_probable_document_number_repair_is_offered_but_exits_1() -> None:
    # The number's 0 read as D: the check digit favours 0, but D is as legal there as 0.
    code, stdout, stderr = invoke(TD3.replace("L898902C36", "L8989D2C36"))
    assert (code, stderr) == (1, "")
    obj = one_object(stdout)
    assert obj["valid"] is False
    assert obj["document_number"] == "L8989D2C3"
    assert obj["checks"]["document_number"] is False
    assert obj["repaired_document_number"] == "L898902C3"
    assert obj["corrections"] == [
        {"field": "document_number", "position": 5, "original": "D", "corrected": "0", "proven": False}
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        TD3.splitlines()[0],
        TD3 + TD3,
        TD3.replace("<<10\n", "<<10<\n"),
        TD3.replace("ERIKSSON", "ERIK SON"),
        "not an mrz at all\nreally not",
    ],
)
def test_not_an_mrz_exits_2_with_one_line_reason_and_no_stdout(text: str) -> None:
    code, stdout, stderr = invoke(text)
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("not an MRZ: ") and stderr.endswith("\n") and stderr.count("\n") == 1


def test_oversized_input_is_refused_without_reading_it_all() -> None:
    code, stdout, stderr = invoke("<" * (1024 * 1024))
    assert (code, stdout) == (2, "")
    assert "longer" in stderr


class _BadBytes(io.StringIO):
    def read(self, size: int | None = -1, /) -> str:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")


def test_undecodable_input_exits_2() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    assert run(_BadBytes(), stdout, stderr, today=TODAY) == 2
    assert stdout.getvalue() == "" and stderr.getvalue().count("\n") == 1


def test_today_defaults_to_the_current_date() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    assert run(io.StringIO(TD3), stdout, stderr) == 0
