"""A chip reader slot in this process: the APDUs go straight to a :class:`SimulatedPassport` object,
through the same access control, secure messaging and file reads as over PC/SC, with no pcscd or
vpcd. The simulated lane puts its travellers' passports here (``backend = "simulated"``).
"""

from __future__ import annotations

import threading
from typing import Any

from drivers.chip.card import SimulatedPassport
from drivers.chip.errors import NoCardError
from drivers.chip.reader import TransportChipReader

SLOT_NAME = "In-process chip slot"


class InProcessTransport:
    """One slot and the card on it (if any); what a PC/SC reader is to :class:`PcscTransport`."""

    def __init__(self, card: SimulatedPassport | None = None) -> None:
        self.reader_name: str | None = SLOT_NAME
        self._card = card
        self._connected = False
        self._changed = threading.Condition()
        # Pull the card away when this many more APDUs arrive (as ChipSimulator.remove_after).
        self.remove_after: int | None = None

    def insert(self, card: SimulatedPassport) -> None:
        with self._changed:
            self._card, self._connected = card, False
            self._changed.notify_all()

    def remove(self) -> None:
        with self._changed:
            self._card, self._connected = None, False
            self._changed.notify_all()

    @property
    def card(self) -> SimulatedPassport | None:
        return self._card

    def find_reader(self) -> str:
        return SLOT_NAME

    def wait_card(self, present: bool, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: (self._card is not None) == present, max(0.0, timeout_s))

    def connect(self) -> bytes:
        with self._changed:
            if self._card is None:
                raise NoCardError("no card on the in-process slot")
            self._card.reset()  # powering the field: a fresh chip, no session
            self._connected = True
            return self._card.atr

    def transmit(self, apdu: bytes) -> bytes:
        with self._changed:
            card = self._card if self._connected else None
            if card is not None and self.remove_after is not None:
                self.remove_after -= 1
                if self.remove_after <= 0:
                    self.remove_after = None
                    self._card, self._connected, card = None, False, None
                    self._changed.notify_all()
        if card is None:
            raise NoCardError("card removed during the read")
        return card.process(apdu)

    def disconnect(self) -> None:
        with self._changed:
            if self._connected and self._card is not None:
                self._card.reset()
            self._connected = False

    def close(self) -> None:
        self.disconnect()


class InProcessChipReader(TransportChipReader):
    """The chip reader of the simulated lane: :attr:`slot` takes and gives back passports."""

    def __init__(self, card: SimulatedPassport | None = None, **options: Any) -> None:
        self.slot = InProcessTransport(card)
        super().__init__(self.slot, **options)
