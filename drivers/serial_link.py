"""A serial port that survives being unplugged.

USB-serial adapters vanish and come back (a loose cable, a brown-out, a technician swapping a
reader). :class:`SerialLink` turns that into health states and a reconnect with backoff, so the
protocol code above it only sees "the link is up, here are bytes" or a :class:`DeviceError`.
"""

from __future__ import annotations

import contextlib
import logging
import termios
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from common.backoff import Backoff
from drivers.interfaces import DeviceError, Health, HealthState

log = logging.getLogger(__name__)

# After this many failed reopen attempts in a row the device counts as failed, not just degraded.
FAILED_AFTER_ATTEMPTS = 3
# pyserial lets termios.error (not an OSError) escape from flush() and reset_input_buffer() when
# the device has vanished; it is the same fault as the others.
_PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialLink:
    def __init__(
        self,
        name: str,
        port: str,
        *,
        baudrate: int = 9600,
        timeout_s: float = 0.05,
        backoff: Backoff | None = None,
        opener: Callable[..., Any] = serial.serial_for_url,
        serial_options: dict[str, Any] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self._backoff = backoff or Backoff(0.2, 5.0)
        self._opener = opener
        self._options = serial_options or {}
        self._monotonic = monotonic
        self._serial: Any = None
        self._lock = threading.RLock()
        self._next_attempt = 0.0
        self._failures = 0
        self._last_error = ""
        self.reconnects = 0

    # --- state ---------------------------------------------------------------------------------

    def health(self) -> Health:
        with self._lock:
            if self._serial is not None:
                return Health.ok()
            if self._failures == 0:
                return Health(HealthState.DEGRADED, "not connected yet")
            state = HealthState.FAILED if self._failures >= FAILED_AFTER_ATTEMPTS else HealthState.DEGRADED
            return Health(state, f"{self.port}: {self._last_error}")

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    # --- connection ------------------------------------------------------------------------------

    def ensure_open(self) -> Any:
        """The open port; reopens it when the backoff allows. Raises DeviceError while it is down."""
        with self._lock:
            if self._serial is not None:
                return self._serial
            now = self._monotonic()
            if now < self._next_attempt:
                raise DeviceError(self.name, f"{self.port} unavailable ({self._last_error}); retrying")
            try:
                port = self._opener(
                    self.port, baudrate=self.baudrate, timeout=self.timeout_s, **self._options
                )
            except (serial.SerialException, OSError, ValueError) as exc:
                self._note_failure(exc)
                raise DeviceError(self.name, f"cannot open {self.port}: {exc}") from None
            if self._failures:
                self.reconnects += 1
                log.info("%s: %s is back after %d failed attempt(s)", self.name, self.port, self._failures)
            self._serial = port
            self._failures = 0
            self._backoff.reset()
            return port

    def drop(self, exc: BaseException) -> DeviceError:
        """Close after an I/O failure; the next ``ensure_open`` reconnects. Returns the error to raise."""
        with self._lock:
            self._close_port()
            self._note_failure(exc)
        return DeviceError(self.name, f"{self.port}: {exc}")

    def close(self) -> None:
        with self._lock:
            self._close_port()

    # --- I/O ---------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        port = self.ensure_open()
        try:
            port.write(data)
            port.flush()
        except _PORT_ERRORS as exc:
            raise self.drop(exc) from None

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, waiting at most the link's timeout."""
        port = self.ensure_open()
        try:
            return bytes(port.read(size))
        except (serial.SerialException, OSError, TypeError) as exc:
            # pyserial raises TypeError from a read racing a close of the underlying fd.
            raise self.drop(exc) from None

    def read_available(self, max_bytes: int = 4096) -> bytes:
        port = self.ensure_open()
        try:
            waiting = port.in_waiting
            return bytes(port.read(min(max(waiting, 1), max_bytes)))
        except (serial.SerialException, OSError, TypeError) as exc:
            raise self.drop(exc) from None

    def reset_input(self) -> None:
        port = self.ensure_open()
        try:
            port.reset_input_buffer()
        except _PORT_ERRORS as exc:
            raise self.drop(exc) from None

    # --- internals ---------------------------------------------------------------------------------

    def _note_failure(self, exc: BaseException) -> None:
        self._failures += 1
        self._last_error = str(exc) or type(exc).__name__
        self._next_attempt = self._monotonic() + self._backoff.next_delay()

    def _close_port(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None
