"""ICAO 9303 check digits: weights 7, 3, 1 repeating over character values, sum modulo 10.

Values: ``0``–``9`` count as themselves, ``A``–``Z`` as 10–35 and the filler ``<`` as 0.
"""

from __future__ import annotations

import string

WEIGHTS = (7, 3, 1)
FILLER = "<"
MRZ_ALPHABET = frozenset(string.digits + string.ascii_uppercase + FILLER)

_VALUES: dict[str, int] = {
    **{d: int(d) for d in string.digits},
    **{letter: 10 + i for i, letter in enumerate(string.ascii_uppercase)},
    FILLER: 0,
}


def char_value(ch: str) -> int:
    """The value ICAO 9303 assigns to one MRZ character."""
    try:
        return _VALUES[ch]
    except KeyError:
        raise ValueError(f"{ch!r} is not an MRZ character") from None


def weight_at(index: int) -> int:
    """Weight of the character at 0-based ``index`` of the checked string."""
    return WEIGHTS[index % 3]


def weighted_sum(value: str) -> int:
    return sum(char_value(ch) * WEIGHTS[i % 3] for i, ch in enumerate(value))


def check_digit(value: str) -> str:
    """Check digit (one character ``0``–``9``) over ``value``; ValueError on a non-MRZ character."""
    return str(weighted_sum(value) % 10)


def verifies(value: str, digit: str) -> bool:
    """True when ``digit`` is a decimal digit equal to the check digit of ``value``.

    A filler or letter in the check-digit position never verifies: the check digit is numeric-only,
    and accepting ``<`` as 0 here would hide a missing digit.
    """
    return len(digit) == 1 and digit in string.digits and check_digit(value) == digit
