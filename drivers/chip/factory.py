"""Turns the ``[devices.chip]`` configuration section into a running chip reader."""

from __future__ import annotations

import shutil
from pathlib import Path

from common.backoff import Backoff
from drivers.chip.options import PcscChipSection, PcscOptions, SimulatedChipSection, VpcdChipSection
from drivers.chip.reader import PcscChipReader, TransportChipReader


def _require_pcsc() -> None:
    """Refuse, when the reader is opened (never when the configuration loads), a machine without the
    PC/SC stack: a reader that could never work is a set-up fault, not a health state to retry."""
    try:
        import smartcard.scard  # noqa: F401 -- only whether it imports
    except ImportError:
        raise ValueError("pyscard is not installed (./gerbang setup installs it)") from None
    from drivers.chip.pcsc import PCSCD_SOCKET

    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists() and not PCSCD_SOCKET.exists():
        raise ValueError("pcscd is not installed (apt-get install pcscd; ./gerbang setup does)")


def build(section: PcscChipSection | SimulatedChipSection | VpcdChipSection) -> TransportChipReader:
    """The chip reader ``section`` describes; ValueError when this machine cannot open it.

    ``backend = "simulated"``: an in-process slot (:class:`~drivers.chip.inprocess.InProcessChipReader`)
    the simulated lane puts passports on. ``"vpcd"``: the vpcd reader of ``vpcd_port``, where
    ``python -m drivers simulate chip`` puts its card. ``"pcsc"``: ``reader`` is the name pcscd
    lists (or its beginning: names end in slot numbers that change when readers are added); unset,
    the first reader. ``options`` (:class:`~drivers.chip.options.PcscOptions`):

    - ``extended_length`` ("auto" | "on" | "off", default "auto"): read in extended-length chunks;
      "auto" when the card's ATR announces extended Lc/Le (ISO 7816-4 card capabilities).
    - ``extended_read_size`` (int, default 4096): bytes per extended READ BINARY.
    - ``short_ids`` (bool, default true): select files by short EF id inside the first READ
      BINARY (one APDU fewer per file); turned off by itself on a chip that refuses it.
    - ``reconnect_initial_s`` / ``reconnect_max_s`` (defaults 0.2 / 5.0): the jittered backoff
      between probes of a vanished reader or pcscd.
    """
    if isinstance(section, SimulatedChipSection):
        from drivers.chip.inprocess import InProcessChipReader

        return InProcessChipReader()
    _require_pcsc()
    if isinstance(section, VpcdChipSection):
        return PcscChipReader(section.reader)
    options: PcscOptions = section.options
    return PcscChipReader(
        section.reader,
        extended_length=options.extended_length,
        extended_read_size=options.extended_read_size,
        short_ids=options.short_ids,
        backoff=Backoff(options.reconnect_initial_s, options.reconnect_max_s),
    )
