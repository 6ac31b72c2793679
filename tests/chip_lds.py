"""Minimal ePassport files for the transport tests: real TLV framing, opaque (random) contents.

Only DG1 means something (the ICAO specimen MRZ, where the chip finds its access key); the LDS data
side builds real data groups and signatures.
"""

from __future__ import annotations

import random
from pathlib import Path

from drivers.chip import tlv
from drivers.interfaces import ChipAccessKey

SPECIMEN_MRZ = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
SPECIMEN_KEY = ChipAccessKey("L898902C3", "740812", "120415")


def lds_files(dg2_size: int = 20_000, seed: int = 1) -> dict[str, bytes]:
    """COM, DG1, DG2 (``dg2_size`` bytes of content) and SOD, framed as their LDS tags."""
    rng = random.Random(seed)
    mrz = "".join(SPECIMEN_MRZ).encode("ascii")
    return {
        "COM": tlv.encode(0x60, tlv.encode(0x5F01, b"0107") + tlv.encode(0x5C, b"\x61\x75\x77")),
        "DG1": tlv.encode(0x61, tlv.encode(0x5F1F, mrz)),
        "DG2": tlv.encode(0x75, rng.randbytes(dg2_size)),
        "SOD": tlv.encode(0x77, rng.randbytes(1800)),
    }


def write_lds(directory: Path, contents: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (directory / f"{name}.bin").write_bytes(data)
    return directory
