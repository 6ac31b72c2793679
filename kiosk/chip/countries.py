"""ICAO 9303-3 state codes (three letters, as in the MRZ) to the ISO 3166-1 alpha-2 codes that
X.509 certificates carry (9303-12 §7.1), from Debian's iso-codes plus ICAO's own codes (``D`` for
Germany, the British nationality codes, ``EUE``, ``RKS``, and ``UTO`` for ICAO's specimen Utopia)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def _table() -> dict[str, str]:
    return json.loads(resources.files(__package__).joinpath("countries.json").read_text())


def alpha2(state: str) -> str | None:
    """The alpha-2 code of an MRZ state code (``<`` filler ignored); None when there is none."""
    return _table().get(state.strip("<").upper())
