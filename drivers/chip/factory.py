"""Turns the ``[devices.chip]`` configuration section into a running chip reader."""

from __future__ import annotations

from common.backoff import Backoff
from drivers.chip.options import PcscChipSection, PcscOptions, SimulatedChipSection
from drivers.chip.reader import PcscChipReader


def build(section: PcscChipSection | SimulatedChipSection) -> PcscChipReader:
    """The PC/SC chip reader ``section`` describes.

    ``reader``: the name pcscd lists (or its beginning: names end in slot numbers that change when
    readers are added); unset, the first reader. For ``backend = "simulated"`` the vpcd reader of
    ``vpcd_port``, where the chip simulator puts its cards. ``options``
    (:class:`~drivers.chip.options.PcscOptions`):

    - ``extended_length`` ("auto" | "on" | "off", default "auto"): read in extended-length chunks;
      "auto" when the card's ATR announces extended Lc/Le (ISO 7816-4 card capabilities).
    - ``extended_read_size`` (int, default 4096): bytes per extended READ BINARY.
    - ``short_ids`` (bool, default true): select files by short EF id inside the first READ
      BINARY (one APDU fewer per file); turned off by itself on a chip that refuses it.
    - ``reconnect_initial_s`` / ``reconnect_max_s`` (defaults 0.2 / 5.0): the jittered backoff
      between probes of a vanished reader or pcscd.
    """
    if isinstance(section, SimulatedChipSection):
        return PcscChipReader(section.reader)
    options: PcscOptions = section.options
    return PcscChipReader(
        section.reader,
        extended_length=options.extended_length,
        extended_read_size=options.extended_read_size,
        short_ids=options.short_ids,
        backoff=Backoff(options.reconnect_initial_s, options.reconnect_max_s),
    )
