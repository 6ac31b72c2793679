"""A serial MRZ reader behind the engine's :class:`~drivers.interfaces.DocumentReader` interface.

A background thread reads the port all the time, so a document presented between two ``read``
calls is parsed when it arrives (pause detection needs the real arrival times) and waits in a
small queue. When the port disappears the thread keeps reopening it with backoff; ``read`` raises
:class:`DeviceError` while it is gone and works again on its own once it is back.

Logs carry counts, lengths and reasons only — never MRZ text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from typing import Any

from common.backoff import Backoff
from drivers.docreader.options import SerialReaderSection
from drivers.docreader.parser import new_parser
from drivers.docreader.protocol import (
    Document,
    Dropped,
    DropReason,
    Output,
    ParserSettings,
    StatusEvent,
)
from drivers.interfaces import DeviceError, DocumentRead, Health, HealthState
from drivers.serial_link import SerialLink

log = logging.getLogger(__name__)

# How long one port read may block: the resolution of pause detection and of shutting down.
READ_SLICE_S = 0.05
READ_CHUNK = 4096
# While the port is down the thread asks the link again this often; the link's backoff decides
# when a reopen is actually attempted.
RETRY_POLL_S = 0.05
# This many unusable fragments without a good read in between suggest a wrong baud or framing.
DEGRADED_AFTER_BAD_FRAGMENTS = 5
DROP_HISTORY = 64
EVENT_HISTORY = 16
DROP_LOG_INTERVAL_S = 5.0
STOP_JOIN_S = 2.0


class SerialDocumentReader:
    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        settings: ParserSettings | None = None,
        queue_size: int = 4,
        name: str = "document_reader",
        serial_options: dict[str, Any] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.name = name
        self.settings = settings or ParserSettings()
        self._queue_size = queue_size
        self._link = SerialLink(
            name,
            port,
            baudrate=baudrate,
            timeout_s=READ_SLICE_S,
            backoff=backoff,
            serial_options=serial_options,
        )
        self._parser = new_parser(self.settings)
        self._cond = threading.Condition()
        self._documents: deque[Document] = deque()
        self._events: deque[StatusEvent] = deque(maxlen=EVENT_HISTORY)
        self._last_event: StatusEvent | None = None
        self._dropped: deque[tuple[str, int]] = deque(maxlen=DROP_HISTORY)
        self.dropped_count = 0
        self.dropped_bytes = 0
        self.documents_read = 0
        self._bad_streak = 0
        self._unlogged: Counter[str] = Counter()
        self._unlogged_bytes = 0
        self._last_drop_log = float("-inf")
        self._link_error: str | None = None
        self._fault: str | None = None
        self._closed = False
        self._stop = threading.Event()
        try:
            self._link.ensure_open()  # so a read right after construction does not see "down"
        except DeviceError as exc:
            self._link_error = exc.reason
            log.warning("%s: %s", name, exc.reason)
        self._thread = threading.Thread(target=self._run, name=f"{name}-rx", daemon=True)
        self._thread.start()

    # --- DocumentReader ------------------------------------------------------------------------------

    def read(self, timeout_s: float) -> DocumentRead | None:
        """The oldest complete document, waiting up to ``timeout_s`` for one.

        Raises DeviceError while the port is gone (documents completed before that are still
        delivered first).
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                if self._documents:
                    document = self._documents.popleft()
                    return DocumentRead(lines=document.lines, read_at=document.at)
                # The link reopens inside the reader thread; is_open sees that before _link_error does.
                link_problem = None if self._link.is_open else self._link_error
                problem = self._fault or ("closed" if self._closed else link_problem)
                if problem is not None:
                    raise DeviceError(self.name, problem)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def health(self) -> Health:
        if self._fault is not None:
            return Health.failed(self._fault)
        if self._closed:
            return Health.failed("closed")
        link = self._link.health()
        if link.state is not HealthState.OK:
            return link
        if self._bad_streak >= DEGRADED_AFTER_BAD_FRAGMENTS:
            return Health(
                HealthState.DEGRADED,
                f"{self._bad_streak} unusable fragments since the last good read; check framing and baud",
            )
        return Health.ok()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(STOP_JOIN_S)
        self._link.close()

    # --- diagnostics and status events ---------------------------------------------------------------

    def events(self) -> list[StatusEvent]:
        """Document present/removed events since the last call, oldest first (bounded history)."""
        with self._cond:
            events = list(self._events)
            self._events.clear()
        return events

    @property
    def last_event(self) -> StatusEvent | None:
        return self._last_event

    @property
    def dropped(self) -> list[tuple[str, int]]:
        """Recent drops as (reason, byte count), oldest first."""
        with self._cond:
            return list(self._dropped)

    @property
    def reconnects(self) -> int:
        return self._link.reconnects

    # --- reader thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        except Exception as exc:  # a bug must not leave the engine waiting on a dead thread
            log.exception("%s: reader thread failed", self.name)
            with self._cond:
                self._fault = f"reader thread failed: {type(exc).__name__}"
                self._cond.notify_all()

    def _step(self) -> None:
        try:
            data = self._link.read_available(READ_CHUNK)
        except DeviceError as exc:
            self._link_down(exc.reason)
            self._stop.wait(RETRY_POLL_S)
            return
        except Exception as exc:  # pyserial lets some faults of a vanished port escape unwrapped
            self._link_down(self._link.drop(exc).reason)
            self._stop.wait(RETRY_POLL_S)
            return
        now = time.monotonic()
        if self._link_error is not None:
            self._link_up()
        self._handle(self._parser.feed(data, now) if data else self._parser.poll(now))
        self._log_drops(now)

    def _link_down(self, reason: str) -> None:
        if self._link_error is not None:
            with self._cond:
                self._link_error = reason
            return
        log.warning("%s: port lost: %s", self.name, reason)
        self._handle(self._parser.reset(time.monotonic()))
        with self._cond:
            self._link_error = reason
            self._cond.notify_all()

    def _link_up(self) -> None:
        log.info("%s: port back (reconnect #%d)", self.name, self._link.reconnects)
        with self._cond:
            self._link_error = None

    def _handle(self, outputs: list[Output]) -> None:
        if not outputs:
            return
        with self._cond:
            for output in outputs:
                if isinstance(output, Document):
                    self._queue(output)
                elif isinstance(output, StatusEvent):
                    self._bad_streak = 0
                    self._events.append(output)
                    self._last_event = output
                    log.info("%s: %s", self.name, output.kind)
                else:
                    self._note_drop(output)
            self._cond.notify_all()

    def _queue(self, document: Document) -> None:
        self._bad_streak = 0
        self.documents_read += 1
        log.info("%s: document of %d line(s) × %d", self.name, len(document.lines), len(document.lines[0]))
        if len(self._documents) >= self._queue_size:
            oldest = self._documents.popleft()
            self._note_drop(Dropped(DropReason.QUEUE_OVERFLOW, oldest.nbytes))
        self._documents.append(document)

    def _note_drop(self, dropped: Dropped) -> None:
        if dropped.reason is not DropReason.QUEUE_OVERFLOW:
            self._bad_streak += 1
        self._dropped.append((str(dropped.reason), dropped.nbytes))
        self.dropped_count += 1
        self.dropped_bytes += dropped.nbytes
        self._unlogged[str(dropped.reason)] += 1
        self._unlogged_bytes += dropped.nbytes

    def _log_drops(self, now: float) -> None:
        # One summary line at most every few seconds: a noisy line must not flood the log.
        if not self._unlogged or now - self._last_drop_log < DROP_LOG_INTERVAL_S:
            return
        with self._cond:
            counts = ", ".join(f"{reason}={n}" for reason, n in sorted(self._unlogged.items()))
            fragments, nbytes = sum(self._unlogged.values()), self._unlogged_bytes
            self._unlogged.clear()
            self._unlogged_bytes = 0
        self._last_drop_log = now
        log.warning("%s: dropped %d fragment(s), %d byte(s) (%s)", self.name, fragments, nbytes, counts)


def build(section: SerialReaderSection) -> SerialDocumentReader:
    """The serial document reader the ``[devices.document_reader]`` section describes.

    ``port`` is required (e.g. ``/dev/serial/by-id/…`` or a pty link); ``baudrate`` defaults to
    9600. ``options`` (all optional):

    - ``framing``: ``"cr"`` (default), ``"lf"``, ``"crlf"`` or ``"stx-etx"``;
    - ``idle_ms``: pause that ends a document or frame in progress, 10–10000 (default 500);
    - ``max_document_bytes``: largest document or frame accepted, 98–65536 (default 256);
    - ``events``: status message profile, ``"none"`` (default), ``"at-lines"`` (lines
      ``@DOC_PRESENT`` / ``@DOC_REMOVED``) or ``"control-bytes"`` (SO 0x0E / SI 0x0F);
    - ``event_present``, ``event_removed``: override a profile token: one control byte (TOML
      ``"\\u000e"``) or printable text; ``""`` turns the event off;
    - ``queue_size``: complete documents held for ``read``, 1–64 (default 4; the oldest is dropped
      and reported when full);
    - ``parity`` (``"N"`` default, ``"E"``, ``"O"``, ``"M"``, ``"S"``), ``stopbits`` (1, 1.5, 2;
      default 1), ``bytesize`` (7 or 8; default 8).

    The section was validated when the configuration loaded (:mod:`drivers.docreader.options`).
    """
    options = section.options
    return SerialDocumentReader(
        section.port,
        baudrate=section.baudrate,
        settings=options.settings,
        queue_size=options.queue_size,
        serial_options=options.serial_options,
    )
