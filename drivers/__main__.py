"""Usage: ``python -m drivers``: device tooling for technicians and tests.

python -m drivers simulate docreader --link PATH ...     MRZ reader on a pty
python -m drivers simulate fingerprint --link PATH ...   ZhianTec R30x sensor on a pty
python -m drivers simulate modbus-io --link PATH ...     RS-485 Modbus RTU relay/IO module on a pty
python -m drivers simulate camera --source PATH ...      a camera playing an image, folder or video
python -m drivers simulate chip --lds DIR ...            an ePassport chip on the vpcd virtual reader
python -m drivers discover                               attached USB devices and serial ports
"""

from __future__ import annotations

import importlib
import sys

SIMULATORS = {
    "docreader": "drivers.docreader.simulator",
    "fingerprint": "drivers.fingerprint.simulator",
    "modbus-io": "drivers.gate.modbus_simulator",
    "camera": "drivers.camera.simulator",
    "chip": "drivers.chip.simulator",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["simulate"] and len(args) >= 2 and args[1] in SIMULATORS:
        return int(importlib.import_module(SIMULATORS[args[1]]).main(args[2:]) or 0)
    if args[:1] == ["discover"]:
        return int(importlib.import_module("drivers.discovery").main(args[1:]) or 0)
    print(__doc__, file=sys.stdout if args[:1] in (["-h"], ["--help"]) else sys.stderr)
    return 0 if args[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main())
