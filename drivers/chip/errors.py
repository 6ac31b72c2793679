"""Typed chip failures: each tells the caller what to do next (retry, refer, ask for the card again)."""

from __future__ import annotations

from drivers.interfaces import DeviceError

DEVICE = "chip"


class ChipError(DeviceError):
    """The chip could not be read (transport, protocol or card failure)."""

    def __init__(self, reason: str) -> None:
        super().__init__(DEVICE, reason)


class ReaderUnavailableError(ChipError):
    """The reader is not there: pcscd is down, or the reader is unplugged or not the one configured."""


class NoCardError(ChipError):
    """No card on the reader, or it was taken away during the read."""


class AccessDeniedError(ChipError):
    """BAC/PACE failed: the MRZ key does not open this chip (wrong MRZ, or not this document)."""


class SecureMessagingError(ChipError):
    """A response failed secure messaging (MAC, missing objects, padding): the session is over."""


class StatusError(ChipError):
    """The chip answered a command with an error status word."""

    def __init__(self, what: str, sw: int) -> None:
        super().__init__(f"{what}: status {sw:04X}")
        self.sw = sw
