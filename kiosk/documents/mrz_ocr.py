"""OCR confusions between letters and digits in OCR-B, and the rules for when they may be undone.

The table is deliberately small: each pair is a confusion seen in MRZ readers, and every extra pair
raises the chance that a genuine (or forged) change is "corrected" into something that merely
happens to satisfy a check digit. The reader never trusts a correction on likelihood alone:

* a numeric-only position holding a letter can only be that letter's digit (each letter below maps
  to exactly one digit), but for dates and check digits the check digit must still agree;
* an alphabetic position holding a digit is corrected only when that digit has exactly one letter
  twin; ``0`` has three (O, D, Q) so a ``0`` in a name or state code is left alone and reported;
* alphanumeric positions (document number) are tried only when a check digit fails, and the caller
  accepts a substitution only when it is the single explanation of the failure: exactly one
  substitution agrees with the check digit and the composite, and the composite also rules out
  the rival explanation that the check digit itself was misread (so visas, which have no
  composite, never get their number corrected).

Even so, a single check digit cannot tell an OCR confusion from a genuine change elsewhere in the
number that some confusion happens to compensate, so a document-number repair is only ever
probable: the reader reports it (``proven=False``) beside a failed check instead of applying it, and
callers treat the repaired number as unconfirmed until the chip (BAC/PACE, keyed on that number)
opens with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

LETTER_TO_DIGIT: Mapping[str, str] = MappingProxyType(
    {"O": "0", "D": "0", "Q": "0", "I": "1", "Z": "2", "S": "5", "G": "6", "B": "8"}
)

DIGIT_TO_LETTERS: Mapping[str, str] = MappingProxyType(
    {
        digit: "".join(sorted(letter for letter, d in LETTER_TO_DIGIT.items() if d == digit))
        for digit in sorted(set(LETTER_TO_DIGIT.values()))
    }
)


def as_digit(ch: str) -> str:
    """``ch`` read in a numeric-only position: a confusable letter becomes its digit, anything else stays."""
    return LETTER_TO_DIGIT.get(ch, ch)


def as_letter(ch: str) -> str | None:
    """``ch`` read in an alphabetic position.

    Returns ``ch`` when it already fits (letter or filler), the one letter a digit can be confused
    with, or None when the digit has no twin or more than one (the reading is not proven).
    """
    if not ch.isdigit():
        return ch
    letters = DIGIT_TO_LETTERS.get(ch, "")
    return letters if len(letters) == 1 else None


def alternatives(ch: str) -> str:
    """Characters ``ch`` may have been misread from, for alphanumeric positions (both directions)."""
    if ch in LETTER_TO_DIGIT:
        return LETTER_TO_DIGIT[ch]
    return DIGIT_TO_LETTERS.get(ch, "")
