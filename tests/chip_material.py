"""Material for chip tests: a synthetic portrait (no real face is committed) and ICAO specimen MRZs."""

from __future__ import annotations

from kiosk.chip.specimen import encode, portrait

__all__ = ["TD1", "TD3", "encode", "portrait"]

TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
TD1 = ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]
