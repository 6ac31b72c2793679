"""Turns the byte stream of a serial MRZ reader into documents, status events and drop reports.

The parser never raises on input and never waits: it is fed bytes with the time they arrived and
polled for pauses. Whatever cannot be part of a document is dropped and reported as
(reason, byte count), and parsing resynchronises at the next boundary the framing offers: a line
end (line framings) or an STX (frame framing). Every byte fed is accounted for exactly once: in
an output's ``nbytes``, in ``ignored_bytes`` (blank lines, line ends between frames) or in
``pending_bytes``.

A line-framed document is complete as soon as its last line arrives — each MRZ line length has
exactly one line count — so a good read never waits for the blank line or the pause; those only
close documents that stopped short, which are dropped, never delivered.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

from drivers.docreader.protocol import (
    CR,
    ETX,
    LF,
    LINES_PER_LENGTH,
    PRINTABLE,
    STX,
    Document,
    DocumentEvent,
    Dropped,
    DropReason,
    Framing,
    Output,
    ParserSettings,
    StatusEvent,
    is_control_token,
    is_mrz_shape,
)

_FRAME_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class StreamParser(ABC):
    def __init__(self, settings: ParserSettings) -> None:
        self.settings = settings
        self.ignored_bytes = 0
        self._control_tokens: dict[int, DocumentEvent] = {}
        self._text_tokens: dict[bytes, DocumentEvent] = {}
        for kind, token in settings.status.tokens():
            if is_control_token(token):
                self._control_tokens[token[0]] = kind
            else:
                self._text_tokens[token] = kind
        self._out: list[Output] = []
        self._now = 0.0
        self._last_byte_at = 0.0
        self._noise = 0  # current run of noise bytes, reported as one fragment when it ends
        self._discarding = False
        self._discarded = 0  # bytes skipped since the last report while discarding

    # --- public -----------------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[Output]:
        """Parse ``data`` that arrived at monotonic time ``now``."""
        self._begin(now)
        for byte in data:
            kind = self._control_tokens.get(byte)
            if kind is None:
                self._byte(byte)
            else:
                self._flush_noise()
                self._emit_event(kind, 1)
        if data:
            self._last_byte_at = now
        return self._end()

    def poll(self, now: float) -> list[Output]:
        """Close what a pause has ended; call it by :meth:`deadline` at the latest."""
        self._begin(now)
        return self._end()

    def reset(self, now: float) -> list[Output]:
        """The link went away: whatever was in progress is cut off."""
        self._begin(now)
        self._stop_discarding()
        pending = self.pending_bytes
        if pending:
            self._drop(DropReason.TRUNCATED, pending)
        self._clear()
        return self._end()

    def deadline(self) -> float | None:
        """When a pause will close what is in progress; ``None`` when nothing is."""
        if self._discarding or self.pending_bytes:
            return self._last_byte_at + self.settings.idle_s
        return None

    @property
    @abstractmethod
    def pending_bytes(self) -> int:
        """Bytes held for a document or frame still in progress."""

    # --- per framing --------------------------------------------------------------------------------

    @abstractmethod
    def _byte(self, byte: int) -> None: ...

    @abstractmethod
    def _expire(self) -> None:
        """A pause: close whatever is in progress."""

    @abstractmethod
    def _clear(self) -> None: ...

    # --- shared bookkeeping -----------------------------------------------------------------------

    def _begin(self, now: float) -> None:
        self._out = []
        self._now = now
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            self._stop_discarding()
            self._expire()

    def _end(self) -> list[Output]:
        self._flush_noise()
        self._flush_discarded()
        out, self._out = self._out, []
        return out

    def _emit_document(self, lines: list[bytes], nbytes: int) -> None:
        self._out.append(Document(tuple(line.decode("ascii") for line in lines), nbytes, self._now))

    def _emit_event(self, kind: DocumentEvent, nbytes: int) -> None:
        self._out.append(StatusEvent(kind, nbytes, self._now))

    def _drop(self, reason: DropReason, nbytes: int) -> None:
        self._out.append(Dropped(reason, nbytes))

    def _add_noise(self, nbytes: int) -> None:
        self._noise += nbytes

    def _flush_noise(self) -> None:
        if self._noise:
            self._drop(DropReason.NOISE, self._noise)
            self._noise = 0

    def _start_discarding(self, nbytes: int) -> None:
        """Drop an oversize fragment and skip the rest of it, up to the next boundary."""
        self._drop(DropReason.OVERSIZE, nbytes)
        self._discarding = True

    def _discard(self) -> None:
        self._discarded += 1

    def _flush_discarded(self) -> None:
        if self._discarded:
            self._drop(DropReason.OVERSIZE, self._discarded)
            self._discarded = 0

    def _stop_discarding(self) -> None:
        self._flush_discarded()
        self._discarding = False


class LineParser(StreamParser):
    """CR, LF or CR LF line framing.

    Inside a line, a noise byte makes everything before it noise: a line is what follows the last
    byte that cannot be reader text, so a document right after garbage still reads when the
    garbage ends in such a byte (otherwise the line it touches is dropped for its length).
    """

    def __init__(self, settings: ParserSettings) -> None:
        super().__init__(settings)
        framing = settings.framing
        self._crlf = framing is Framing.CRLF
        # the byte that ends a line, and so ends skipping an oversize one
        self._end_byte = CR if framing is Framing.CR else LF
        self._line = bytearray()
        self._cr = False  # CR LF framing: a CR that may start a terminator
        self._doc: list[bytes] = []
        self._doc_bytes = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._line) + self._cr + self._doc_bytes

    def _byte(self, byte: int) -> None:
        if self._discarding:
            self._discard()
            if byte == self._end_byte:
                self._stop_discarding()
            return
        if self._cr:
            self._cr = False
            if byte == LF:
                self._end_line(2)
                return
            self._line_to_noise(1)  # a lone CR is not a terminator here
        if self._crlf and byte == CR:
            self._cr = True
            self._check_size()
        elif byte == self._end_byte and not self._crlf:
            self._end_line(1)
        elif byte in PRINTABLE:
            self._flush_noise()
            self._line.append(byte)
            self._check_size()
        else:
            self._line_to_noise(1)

    def _expire(self) -> None:
        if self._cr:
            self._cr = False
            self._add_noise(1)  # half a terminator; the line before it may still be whole
        if self._line:
            self._end_line(0)  # a last line without its terminator still counts if the shape fits
        self._end_document()

    def _clear(self) -> None:
        self._line.clear()
        self._cr = False
        self._doc = []
        self._doc_bytes = 0

    def _line_to_noise(self, extra: int) -> None:
        self._add_noise(len(self._line) + extra)
        self._line.clear()

    def _check_size(self) -> None:
        if self.pending_bytes > self.settings.max_document_bytes:
            self._end_document()
            line_bytes = len(self._line) + self._cr
            self._line.clear()
            self._cr = False
            self._start_discarding(line_bytes)

    def _end_line(self, terminator: int) -> None:
        self._flush_noise()
        content = bytes(self._line)
        self._line.clear()
        if not content:
            self.ignored_bytes += terminator
            self._end_document()  # a blank line closes the document
            return
        size = len(content) + terminator
        kind = self._text_tokens.get(content)
        if kind is not None:
            self._emit_event(kind, size)
            return
        expected = LINES_PER_LENGTH.get(len(content))
        if expected is None:
            self._end_document()
            self._drop(DropReason.BAD_SHAPE, size)
            return
        if self._doc and len(self._doc[0]) != len(content):
            self._end_document()  # a line of another shape: the document it follows stopped short
        self._doc.append(content)
        self._doc_bytes += size
        if len(self._doc) == expected:
            self._emit_document(self._doc, self._doc_bytes)
            self._doc = []
            self._doc_bytes = 0

    def _end_document(self) -> None:
        if self._doc:
            self._drop(DropReason.TRUNCATED, self._doc_bytes)
            self._doc = []
            self._doc_bytes = 0


class FrameParser(StreamParser):
    """STX … ETX framing; lines inside separated by CR, LF or CR LF. An STX always starts afresh."""

    def __init__(self, settings: ParserSettings) -> None:
        super().__init__(settings)
        self._in_frame = False
        self._frame = bytearray()

    @property
    def pending_bytes(self) -> int:
        return 1 + len(self._frame) if self._in_frame else 0

    def _byte(self, byte: int) -> None:
        if byte == STX:
            self._flush_noise()
            self._stop_discarding()
            if self._in_frame:
                self._drop(DropReason.TRUNCATED, self.pending_bytes)
            self._in_frame = True
            self._frame.clear()
        elif self._discarding:
            self._discard()
            if byte == ETX:
                self._stop_discarding()
        elif not self._in_frame:
            if byte in (CR, LF):
                # Readers may end a frame with a line end too; harmless between frames.
                self._flush_noise()
                self.ignored_bytes += 1
            else:
                self._add_noise(1)
        elif byte == ETX:
            self._end_frame()
        else:
            self._frame.append(byte)
            if self.pending_bytes > self.settings.max_document_bytes:
                size = self.pending_bytes
                self._clear()
                self._start_discarding(size)

    def _expire(self) -> None:
        if self._in_frame:
            self._drop(DropReason.TRUNCATED, self.pending_bytes)
            self._clear()

    def _clear(self) -> None:
        self._in_frame = False
        self._frame.clear()

    def _end_frame(self) -> None:
        size = self.pending_bytes + 1
        content = bytes(self._frame)
        self._clear()
        # Empty lines carry nothing: some readers mark a missing line with an empty one.
        lines = [line for line in _FRAME_LINE_BREAK.split(content) if line]
        kind = self._text_tokens.get(lines[0]) if len(lines) == 1 else None
        if kind is not None:
            self._emit_event(kind, size)
        elif any(byte not in PRINTABLE for line in lines for byte in line):
            self._drop(DropReason.NOISE, size)
        elif is_mrz_shape([line.decode("ascii") for line in lines]):
            self._emit_document(lines, size)
        else:
            self._drop(DropReason.BAD_SHAPE, size)


def new_parser(settings: ParserSettings) -> StreamParser:
    if settings.framing is Framing.STX_ETX:
        return FrameParser(settings)
    return LineParser(settings)
