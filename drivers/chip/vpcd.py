"""The card side of the vsmartcard ``vpcd`` virtual reader's socket protocol.

``vpcd`` (a pcscd reader driver) listens on TCP 35963 ("Virtual PCD 00 00") and 35964 ("… 00 01");
a virtual card connects to it, and is "inserted" while the connection lasts. Every message is a
2-byte big-endian length and a payload; a 1-byte payload is a control (0 power off, 1 power on,
2 reset, 4 "send your ATR", answered as a normal message); anything longer is a command APDU,
answered with the response APDU.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963
POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4


def tune(sock: socket.socket) -> None:
    """Answer without Nagle's delay: one APDU at a time, each waiting for the last, is latency-bound."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        # vpcd writes a message's length and payload separately: acknowledge at once, or its
        # Nagle waits out our delayed ACK (40 ms) before sending the payload.
        if hasattr(socket, "TCP_QUICKACK"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def receive(sock: socket.socket) -> bytes | None:
    """The next message's payload; ``None`` when vpcd closed the connection."""
    header = _receive_exactly(sock, 2)
    if header is None:
        return None
    return _receive_exactly(sock, int.from_bytes(header, "big"))


def send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(len(payload).to_bytes(2, "big") + payload)


# vpcd has two readers on fixed ports: whoever drives one (the tests, the chip benchmark) holds an
# exclusive flock on this file for the duration, so they never put cards on the same reader at once.
LOCK_PATH = Path(tempfile.gettempdir()) / "gerbang-vpcd.lock"


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    with LOCK_PATH.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
