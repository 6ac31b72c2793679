"""``python -m kiosk mrz``: read MRZ lines on stdin, print one JSON object describing them.

Exit status: 0 valid, 1 parsed but a check or field failed, 2 not an MRZ (reason on stderr,
nothing on stdout), so scripts can tell "bad document" from "not a document".
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import TextIO

from kiosk.documents.mrz import NotAnMrz, parse_mrz

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_NOT_MRZ = 2

# Read at most this much: an MRZ is ~100 characters, and an unbounded read of a wrong pipe
# (a camera stream, a log) would only delay the same "not an MRZ" answer.
_READ_LIMIT = 64 * 1024


def run(stdin: TextIO, stdout: TextIO, stderr: TextIO, today: date | None = None) -> int:
    try:
        text = stdin.read(_READ_LIMIT + 1)
    except UnicodeDecodeError:
        return _not_an_mrz(stderr, "input is not valid text")
    if len(text) > _READ_LIMIT:
        return _not_an_mrz(stderr, f"input longer than {_READ_LIMIT} characters")
    try:
        mrz = parse_mrz(text, today=today)
    except NotAnMrz as exc:
        return _not_an_mrz(stderr, str(exc))
    stdout.write(json.dumps(mrz.to_json(), ensure_ascii=True) + "\n")
    return EXIT_VALID if mrz.valid else EXIT_INVALID


def _not_an_mrz(stderr: TextIO, reason: str) -> int:
    # Keep the reason on one line whatever the message holds: callers read stderr line by line.
    stderr.write("not an MRZ: " + " ".join(reason.split()) + "\n")
    return EXIT_NOT_MRZ


if __name__ == "__main__":
    raise SystemExit(run(sys.stdin, sys.stdout, sys.stderr))
