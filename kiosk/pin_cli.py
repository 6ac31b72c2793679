"""``python -m kiosk pin-hash``: turn a maintenance PIN into the ``[ui] maintenance_pin_hash`` line.

At a terminal the PIN is typed twice without echo; from a pipe (a provisioning script) it is the
first line of stdin. The PIN itself is never printed, logged or kept.
"""

from __future__ import annotations

import getpass
from typing import TextIO

from common.pinhash import MIN_DIGITS, PinHashError, hash_pin


def run(stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    if stdin.isatty():
        pin = getpass.getpass(f"maintenance PIN ({MIN_DIGITS}+ digits): ")
        if getpass.getpass("again: ") != pin:
            print("the two PINs differ; nothing written", file=stderr)
            return 2
    else:
        pin = stdin.readline().rstrip("\r\n")
    try:
        encoded = hash_pin(pin)
    except PinHashError as exc:
        print(f"refused: {exc}", file=stderr)
        return 2
    print(f'[ui]\nmaintenance_pin_hash = "{encoded}"', file=stdout)
    return 0
