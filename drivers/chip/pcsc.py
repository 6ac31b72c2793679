"""PC/SC access through pcscd with pyscard's ``scard`` layer: readers, card events, APDU exchange.

Any PC/SC contactless reader (ACS ACR1252U, HID Omnikey 5022/5427, Identiv) or the vsmartcard
``vpcd`` virtual reader. pcsc-lite errors become the typed chip errors: no service or no reader is a
:class:`~drivers.chip.errors.ReaderUnavailableError`, a card that left is a
:class:`~drivers.chip.errors.NoCardError`.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from smartcard import scard

from drivers.chip.errors import ChipError, NoCardError, ReaderUnavailableError

_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_W_UNPOWERED_CARD,
    scard.SCARD_W_UNRESPONSIVE_CARD,
}
_READER_GONE = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_E_NO_READERS_AVAILABLE,
    scard.SCARD_E_READER_UNAVAILABLE,
    scard.SCARD_E_UNKNOWN_READER,
}
# Debian's pcscd 1.9.9 always listens here (it ignores PCSCLITE_CSOCK_NAME).
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
_REMOVAL_GRACE_S = 1.5
# GetStatusChange waits in slices so a vanished pcscd or reader is noticed while waiting.
_WAIT_SLICE_MS = 500


def daemon_answers() -> bool:
    """Whether a pcscd accepts connections on its socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


def _message(code: int) -> str:
    return f"{scard.SCardGetErrorMessage(code).strip()} (0x{code & 0xFFFFFFFF:08X})"


def _check(code: int, what: str) -> None:
    if code == scard.SCARD_S_SUCCESS:
        return
    if code in _CARD_GONE:
        raise NoCardError(f"{what}: {_message(code)}")
    if code in _READER_GONE:
        raise ReaderUnavailableError(f"{what}: {_message(code)}")
    raise ChipError(f"{what}: {_message(code)}")


class PcscTransport:
    """One reader (by name, or the first pcscd lists) and at most one card connection on it."""

    def __init__(self, reader: str | None = None) -> None:
        self.wanted = reader
        self._context: int | None = None
        self._card: int | None = None
        self._protocol = 0
        self.reader_name: str | None = None

    def _ctx(self) -> int:
        if self._context is None:
            code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            _check(code, "pcscd")
            self._context = context
        return self._context

    def _drop_context(self) -> None:
        self.disconnect()
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def readers(self) -> list[str]:
        code, names = scard.SCardListReaders(self._ctx(), [])
        if code == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if code != scard.SCARD_S_SUCCESS:
            # The daemon went away (or restarted): a fresh context is needed from now on.
            self._drop_context()
            _check(code, "list readers")
        return list(names)

    def find_reader(self) -> str:
        """The configured reader (exact name, else the first whose name starts with it), or the first."""
        names = self.readers()
        if self.wanted is None:
            found = names[0] if names else None
        else:
            found = (
                self.wanted
                if self.wanted in names
                else next((n for n in names if n.startswith(self.wanted)), None)
            )
        if found is None:
            raise ReaderUnavailableError(f"reader {self.wanted or '(any)'} not connected")
        self.reader_name = found
        return found

    def card_present(self) -> bool:
        return self._state(self.find_reader(), scard.SCARD_STATE_UNAWARE, 0) & scard.SCARD_STATE_PRESENT != 0

    def wait_card(self, present: bool, timeout_s: float) -> bool:
        """Wait until a card is (``present``) or is not on the reader; ``False`` at the deadline."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        reader = self.find_reader()
        state = self._state(reader, scard.SCARD_STATE_UNAWARE, 0)
        while bool(state & scard.SCARD_STATE_PRESENT) != present:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return False
            state = self._state(reader, state & ~scard.SCARD_STATE_CHANGED, min(left_ms, _WAIT_SLICE_MS))
        return True

    def _state(self, reader: str, known: int, timeout_ms: int) -> int:
        code, states = scard.SCardGetStatusChange(self._ctx(), timeout_ms, [(reader, known)])
        if code == scard.SCARD_E_TIMEOUT:
            return known
        if code != scard.SCARD_S_SUCCESS:
            self._drop_context()
            _check(code, "reader state")
        return int(states[0][1])

    def connect(self) -> bytes:
        """Connect to the card on the reader; its ATR."""
        self.disconnect()
        reader = self.find_reader()
        code, card, protocol = scard.SCardConnect(
            self._ctx(),
            reader,
            scard.SCARD_SHARE_EXCLUSIVE,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if code == scard.SCARD_E_SHARING_VIOLATION:
            raise ChipError("reader in use by another program")
        _check(code, "connect")
        self._card, self._protocol = card, protocol
        code, _, _, _, atr = scard.SCardStatus(card)
        _check(code, "card status")
        return bytes(atr)

    def transmit(self, apdu: bytes) -> bytes:
        if self._card is None:
            raise NoCardError("no card connected")
        code, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
        # Some drivers (vpcd among them) report a lost card as success with no status word.
        if code == scard.SCARD_S_SUCCESS and len(response) < 2:
            code = scard.SCARD_E_NOT_TRANSACTED
        if code != scard.SCARD_S_SUCCESS:
            # Release the handle even though the card is gone, or pcscd keeps the reader reserved.
            self.disconnect(scard.SCARD_LEAVE_CARD)
            # A chip leaving the field mid-APDU often reads as a failed transaction, not as
            # "removed": ask the reader, giving it a moment to notice.
            if code not in _CARD_GONE and self.wait_card(False, _REMOVAL_GRACE_S):
                raise NoCardError(f"card removed during the read ({_message(code)})")
            _check(code, "transmit")
        return bytes(response)

    def disconnect(self, disposition: int = scard.SCARD_RESET_CARD) -> None:
        """Leave the card, by default resetting it so its session keys are gone."""
        card, self._card = self._card, None
        if card is not None:
            scard.SCardDisconnect(card, disposition)

    def close(self) -> None:
        self._drop_context()
