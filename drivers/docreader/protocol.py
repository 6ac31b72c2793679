"""The wire format of serial MRZ readers: framing, MRZ shapes, status tokens and the encoder.

OCR swipe and full-page readers in serial ("keyboard-less") mode send the machine-readable zone as
ASCII text. Two framings are common:

- plain lines ended by CR, LF or CR LF, a document closed by a blank line or by a pause;
- one document inside STX (0x02) … ETX (0x03) with its lines separated by CR (documented for
  DESKO readers on the CUTE interface: ``<STX> line <CR> line <CR> [line <CR>] <ETX>``).

No checksum byte is modelled: the one MRZ reader protocol found with a trailing block-check byte
(3M RTE Native: ``<SOH> length "OU" <STX> flag data <ETX> BCC``) frames differently, and the
public documentation found does not give the BCC's rule: a guessed check would reject good reads.

Which lines make a document is a matter of shape only (ICAO 9303: TD1 3×30, TD2/MRV-B 2×36,
TD3/MRV-A 2×44); what the characters mean is ``kiosk.documents``' job. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

STX = 0x02
ETX = 0x03
LF = 0x0A
CR = 0x0D

# Text a reader may put in an MRZ line; everything else on the wire is framing or noise.
PRINTABLE = frozenset(range(0x20, 0x7F))

# line length -> number of lines of the one MRZ shape with lines that long
LINES_PER_LENGTH: dict[int, int] = {30: 3, 36: 2, 44: 2}

# The largest valid document in any framing: 3 lines of 30, each with a two-byte terminator, plus
# a blank line; a size limit below this would refuse good reads.
LARGEST_DOCUMENT_BYTES = 3 * (30 + 2) + 2


class Framing(StrEnum):
    CR = "cr"
    LF = "lf"
    CRLF = "crlf"
    STX_ETX = "stx-etx"

    @property
    def terminator(self) -> bytes:
        """The line terminator of a line framing; STX/ETX frames separate their lines with CR."""
        return {Framing.LF: b"\n", Framing.CRLF: b"\r\n"}.get(self, b"\r")


class DocumentEvent(StrEnum):
    PRESENT = "document_present"
    REMOVED = "document_removed"


class DropReason(StrEnum):
    NOISE = "noise"  # bytes that cannot be reader text (NUL, ≥ 0x80, stray control bytes)
    TRUNCATED = "truncated"  # a document or frame cut off (pause, new frame, disconnect)
    BAD_SHAPE = "bad_shape"  # complete, but not 2×36, 2×44 or 3×30 printable lines
    OVERSIZE = "oversize"  # longer than max_document_bytes; skipped up to the next boundary
    QUEUE_OVERFLOW = "queue_overflow"  # a complete document nobody collected in time


def is_control_token(token: bytes) -> bool:
    return len(token) == 1 and token[0] not in PRINTABLE


def valid_token(token: bytes) -> bool:
    if is_control_token(token):
        # NUL is what line noise looks like; the others are framing.
        return token[0] not in (0x00, STX, ETX, LF, CR)
    return bool(token) and all(b in PRINTABLE for b in token)


@dataclass(frozen=True)
class StatusProfile:
    """Which bytes a reader sends when a document is put on it or taken away.

    A token is either one control byte (recognised wherever it occurs, even inside a line) or
    printable text (recognised as a whole line, or as the whole content of an STX/ETX frame).
    An empty token means the reader does not report that event.
    """

    present: bytes = b""
    removed: bytes = b""

    def __post_init__(self) -> None:
        for kind, token in self.tokens():
            if not valid_token(token):
                raise ValueError(f"the {kind} token must be one control byte or printable ASCII text")
        if self.present and self.present == self.removed:
            raise ValueError("present and removed tokens must differ")

    def tokens(self) -> list[tuple[DocumentEvent, bytes]]:
        pairs = ((DocumentEvent.PRESENT, self.present), (DocumentEvent.REMOVED, self.removed))
        return [(kind, token) for kind, token in pairs if token]

    def token(self, kind: DocumentEvent) -> bytes:
        return self.present if kind is DocumentEvent.PRESENT else self.removed


# Named profiles are conventions of this project, not claims about any vendor's firmware: set a
# reader to send these, or give its own tokens in the configuration.
STATUS_PROFILES: dict[str, StatusProfile] = {
    "none": StatusProfile(),
    "at-lines": StatusProfile(b"@DOC_PRESENT", b"@DOC_REMOVED"),
    "control-bytes": StatusProfile(b"\x0e", b"\x0f"),  # SO / SI: never part of MRZ text
}


def is_mrz_shape(lines: Sequence[str]) -> bool:
    if not lines:
        return False
    length = len(lines[0])
    return LINES_PER_LENGTH.get(length) == len(lines) and all(len(line) == length for line in lines)


@dataclass(frozen=True)
class ParserSettings:
    framing: Framing = Framing.CR
    # A pause this long ends a document or frame in progress (and whatever junk is being skipped).
    idle_s: float = 0.5
    max_document_bytes: int = 256
    status: StatusProfile = StatusProfile()

    def __post_init__(self) -> None:
        # The messages name the configuration keys (idle_ms, max_document_bytes): an operator reads them.
        if not 0.01 <= self.idle_s <= 10.0:
            raise ValueError("idle_ms must be between 10 and 10000")
        if not LARGEST_DOCUMENT_BYTES <= self.max_document_bytes <= 65536:
            raise ValueError(f"max_document_bytes must be between {LARGEST_DOCUMENT_BYTES} and 65536")
        longest_token = max((len(token) for _, token in self.status.tokens()), default=0)
        if longest_token > self.max_document_bytes - 2:
            raise ValueError("a status token does not fit in max_document_bytes")


# --- outputs of the stream parser ---------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    lines: tuple[str, ...]
    nbytes: int  # wire bytes it took, framing included
    at: float  # monotonic time it was complete


@dataclass(frozen=True)
class StatusEvent:
    kind: DocumentEvent
    nbytes: int
    at: float


@dataclass(frozen=True)
class Dropped:
    reason: DropReason
    nbytes: int


Output = Document | StatusEvent | Dropped


# --- encoder (what a reader sends) -----------------------------------------------------------------


def encode_document(lines: Sequence[str], framing: Framing, *, blank_line: bool = True) -> bytes:
    """The bytes a reader sends for ``lines``; ``blank_line`` closes a line-framed document.

    Lines may have any shape (a reader can misread) but only printable ASCII: anything else would
    be framing, which a real reader never puts inside a line.
    """
    encoded = [_line_bytes(line) for line in lines]
    if not encoded:
        raise ValueError("a document has at least one line")
    body = b"".join(line + framing.terminator for line in encoded)
    if framing is Framing.STX_ETX:
        return bytes([STX]) + body + bytes([ETX])
    return body + framing.terminator if blank_line else body


def encode_event(kind: DocumentEvent, framing: Framing, status: StatusProfile) -> bytes:
    """The bytes a reader sends for ``kind``; empty when the profile does not report it."""
    token = status.token(kind)
    if not token or is_control_token(token):
        return token
    if framing is Framing.STX_ETX:
        return bytes([STX]) + token + bytes([ETX])
    return token + framing.terminator


def _line_bytes(line: str) -> bytes:
    if not line or not line.isascii() or not line.isprintable():
        raise ValueError("an MRZ line must be non-empty printable ASCII")
    return line.encode("ascii")
