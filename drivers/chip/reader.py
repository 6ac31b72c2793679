"""The gate's :class:`~drivers.interfaces.ChipReader` over an APDU transport: a PC/SC reader
(:class:`PcscChipReader`), or a slot holding a simulated chip in this process
(:mod:`drivers.chip.inprocess`). The protocol (access control, secure messaging, file reads) is the
same code for both; only where the APDUs go differs.

Health follows the reader: FAILED while pcscd is down or the reader is unplugged, OK when it is
listed. A failed reader is probed again on a jittered backoff (health is asked before every
transaction, so that is where recovery is noticed). The session of the last read stays open for
Active Authentication until the next read, the card leaving, or :meth:`close`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from common.backoff import Backoff
from drivers.chip import atr
from drivers.chip.errors import ChipError, NoCardError, ReaderUnavailableError
from drivers.chip.reading import DEFAULT_EXTENDED_READ, ChipReading, read_chip
from drivers.interfaces import ChipAccessKey, ChipSession, Health

log = logging.getLogger(__name__)

ExtendedLength = Literal["auto", "on", "off"]


class ChipTransport(Protocol):
    """Where the APDUs go: one reader and at most one card connection on it."""

    reader_name: str | None

    def find_reader(self) -> str:
        """The reader's name; ReaderUnavailableError when it is not there."""
        ...

    def wait_card(self, present: bool, timeout_s: float) -> bool: ...

    def connect(self) -> bytes:
        """Connect to (power) the card on the reader; its ATR. NoCardError without one."""
        ...

    def transmit(self, apdu: bytes) -> bytes: ...

    def disconnect(self) -> None:
        """Leave the card, resetting it so its session keys are gone."""
        ...

    def close(self) -> None: ...


class TransportChipReader:
    name = "chip"

    def __init__(
        self,
        transport: ChipTransport,
        *,
        extended_length: ExtendedLength = "auto",
        extended_read_size: int = DEFAULT_EXTENDED_READ,
        short_ids: bool = True,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.extended_length = extended_length
        self.extended_read_size = extended_read_size
        self.short_ids = short_ids
        self._backoff = backoff or Backoff(0.2, 5.0)
        self._clock = clock
        self._lock = threading.RLock()
        self._fault: str | None = None
        self._retry_at = 0.0
        self._session: ChipReading | None = None

    def health(self) -> Health:
        with self._lock:
            if self._fault is not None and self._clock() < self._retry_at:
                return Health.failed(self._fault)
            try:
                self.transport.find_reader()
            except ChipError as exc:
                self._failed(exc.reason)
                return Health.failed(exc.reason)
            if self._fault is not None:
                log.info("chip reader back: %s", self.transport.reader_name)
            self._fault = None
            self._backoff.reset()
            return Health.ok()

    def wait_for_card(self, timeout_s: float) -> bool:
        return self._wait(True, timeout_s)

    def wait_for_removal(self, timeout_s: float) -> bool:
        return self._wait(False, timeout_s)

    def read(self, key: ChipAccessKey, files: Sequence[str]) -> ChipSession:
        with self._lock:
            self._session = None
            try:
                card_atr = self.transport.connect()
                extended = self.extended_length == "on" or (
                    self.extended_length == "auto" and atr.supports_extended_length(card_atr)
                )
                session, reading = read_chip(
                    self.transport.transmit,
                    key,
                    files,
                    extended_length=extended,
                    extended_read_size=self.extended_read_size,
                    short_ids=self.short_ids,
                )
            except ReaderUnavailableError as exc:
                self._failed(exc.reason)
                raise
            except ChipError:
                self.transport.disconnect()
                raise
            self._session = reading
            log.info("chip read: %s, %d files, %d APDUs", session.access, len(session.files), session.apdus)
            return session

    def internal_authenticate(self, challenge: bytes) -> bytes:
        with self._lock:
            if self._session is None:
                raise NoCardError("no open chip session: read the chip first")
            try:
                return self._session.internal_authenticate(challenge)
            except ChipError:
                self._session = None
                self.transport.disconnect()
                raise

    def close(self) -> None:
        with self._lock:
            self._session = None
            self.transport.close()

    def _wait(self, present: bool, timeout_s: float) -> bool:
        with self._lock:
            try:
                return self.transport.wait_card(present, timeout_s)
            except ReaderUnavailableError as exc:
                self._failed(exc.reason)
                raise

    def _failed(self, reason: str) -> None:
        if self._fault is None:
            log.warning("chip reader failed: %s", reason)
        self._fault = reason
        self._retry_at = self._clock() + self._backoff.next_delay()


class PcscChipReader(TransportChipReader):
    """The chip reader on a PC/SC reader: ``reader`` is the name pcscd lists (or its beginning)."""

    def __init__(self, reader: str | None = None, **options: Any) -> None:
        # Imported here: the in-process reader, and a configuration being loaded, need no pyscard.
        from drivers.chip.pcsc import PcscTransport

        super().__init__(PcscTransport(reader), **options)
