"""A serial MRZ reader on a pty, speaking the same wire format as the real ones.

Python use (tests, the whole-gate simulation)::

    endpoint = PtyEndpoint(Path("/run/gerbang/docreader"))
    reader = DocReaderSimulator(endpoint, Framing.CRLF)
    reader.start()
    reader.present(["P<UTO…", "L898…"])   # a traveller lays a passport on the glass
    reader.remove()
    reader.send_raw(b"\\x00\\xff")          # line noise
    reader.unplug(); reader.replug()       # a technician pulls the USB cable
    reader.stop()

Command line: ``python -m drivers simulate docreader --link PATH [--framing …] [--baud N]`` prints
the link path, then sends every MRZ read from stdin (documents separated by blank lines). At the
end of stdin it waits until the host has read everything (at most ``--drain-timeout`` seconds),
then exits; SIGTERM exits at once.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import select
import signal
import sys
import termios
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from drivers.docreader.protocol import (
    STATUS_PROFILES,
    DocumentEvent,
    Framing,
    StatusProfile,
    encode_document,
    encode_event,
)
from drivers.pty_endpoint import PtyEndpoint

log = logging.getLogger(__name__)

# Longest the serve loop sleeps before it looks at the host's side and the stop flag again.
SERVE_TICK_S = 0.02
UNPACED_CHUNK = 4096
HOST_SETTLE_S = 0.05
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
STOP_JOIN_S = 2.0


class DocReaderSimulator:
    """A reader that sends what a traveller lays on it.

    It owns the endpoint's I/O while started (its master side is switched to non-blocking so a
    host that stops reading cannot wedge the simulator). With ``baudrate`` set, output is paced
    to the time the bytes would take on a real 8N1 line; ptys themselves ignore the baud rate.
    """

    def __init__(
        self,
        endpoint: PtyEndpoint,
        framing: Framing | str = Framing.CR,
        *,
        blank_line: bool = True,
        status: StatusProfile | None = None,
        baudrate: int | None = None,
    ) -> None:
        if baudrate is not None and baudrate <= 0:
            raise ValueError("baudrate must be positive")
        self.endpoint = endpoint
        self.framing = Framing(framing)
        self.blank_line = blank_line
        self.status = status or StatusProfile()
        self.baudrate = baudrate
        self.bytes_sent = 0
        self.bytes_lost = 0  # queued while unplugged: a reader without power sends nothing
        self._chunk = max(1, baudrate // 1000) if baudrate else UNPACED_CHUNK  # ~10 ms of wire time
        self._outbox = bytearray()
        self._generation = 0  # bumped when the outbox is lost, so a write in flight cannot trim new data
        self._cond = threading.Condition()
        self._io = threading.Lock()  # the endpoint's fds: serve loop vs unplug/replug
        self._nonblocking_fd = -1
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control API -------------------------------------------------------------------------------

    def present(self, lines: Sequence[str]) -> None:
        """A document is laid on the reader: its MRZ goes out (after a present event, if reported)."""
        data = encode_document(lines, self.framing, blank_line=self.blank_line)
        self._send(encode_event(DocumentEvent.PRESENT, self.framing, self.status) + data)

    def remove(self) -> None:
        """The document is taken away; only a reader that reports removal sends anything."""
        self._send(encode_event(DocumentEvent.REMOVED, self.framing, self.status))

    def send_raw(self, data: bytes) -> None:
        self._send(data)

    def unplug(self) -> None:
        with self._io:
            self.endpoint.unplug()
            self._nonblocking_fd = -1
        self._lose_outbox()

    def replug(self) -> None:
        with self._io:
            self.endpoint.replug()
            self._nonblocking_fd = -1

    def wait_sent(self, timeout_s: float) -> bool:
        """Whether everything queued went onto the wire within ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._outbox, timeout_s)

    def wait_host_read(self, timeout_s: float) -> bool:
        """Whether everything queued was sent and read (or flushed) by the host within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        if not self.wait_sent(timeout_s):
            return False
        # The kernel hands written bytes to the reading side asynchronously: an empty input queue
        # only counts once it has stayed empty for a moment.
        quiet_since: float | None = None
        while True:
            now = time.monotonic()
            if self._unread_by_host():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= HOST_SETTLE_S:
                return True
            if now >= deadline:
                return False
            time.sleep(SERVE_TICK_S)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="docreader-sim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(STOP_JOIN_S)
            self._thread = None

    # --- serve loop --------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self._outbox += data
            self._cond.notify_all()

    def _lose_outbox(self) -> None:
        with self._cond:
            self.bytes_lost += len(self._outbox)
            self._outbox.clear()
            self._generation += 1
            self._cond.notify_all()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                if not self._outbox:
                    self._cond.wait(SERVE_TICK_S)
                pending = bytes(self._outbox[: self._chunk])
                generation = self._generation
            with self._io:
                plugged = self.endpoint.is_open
                self._discard_host_bytes()
                written = self._write(pending) if plugged and pending else 0
            if pending and not plugged:
                self._lose_outbox()
            elif written:
                with self._cond:
                    if generation == self._generation:
                        del self._outbox[:written]
                    self.bytes_sent += written
                    self._cond.notify_all()
                if self.baudrate:
                    self._stopping.wait(written * BITS_PER_BYTE / self.baudrate)
            elif pending:
                self._stopping.wait(SERVE_TICK_S)  # the host is not reading; its buffer is full

    def _write(self, data: bytes) -> int:
        fd = self.endpoint.master_fd
        try:
            if fd != self._nonblocking_fd:
                os.set_blocking(fd, False)
                self._nonblocking_fd = fd
            return os.write(fd, data)
        except OSError:
            return 0  # full (EAGAIN) or gone; the loop retries, unplug() accounts for the rest

    def _unread_by_host(self) -> int:
        with self._io:
            if self.endpoint.slave_fd < 0:
                return 0
            buffer = bytearray(4)
            fcntl.ioctl(self.endpoint.slave_fd, termios.FIONREAD, buffer)
        return int.from_bytes(buffer, sys.byteorder)

    def _discard_host_bytes(self) -> None:
        # These readers take no commands, but like real ones they must not let a chatty host fill
        # the line until the host's own writes block.
        fd = self.endpoint.master_fd
        if fd < 0:
            return
        with contextlib.suppress(OSError):
            while select.select([fd], [], [], 0)[0] and os.read(fd, UNPACED_CHUNK):
                pass


# --- command line ---------------------------------------------------------------------------------


class _Terminated(Exception):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _documents(stream: TextIO) -> Iterator[list[str]]:
    """Groups of non-blank lines; a blank line or the end of the stream closes a group."""
    lines: list[str] = []
    for raw in stream:
        line = raw.strip()
        if line:
            lines.append(line)
        elif lines:
            yield lines
            lines = []
    if lines:
        yield lines


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m drivers simulate docreader",
        description="Serial MRZ reader on a pty: sends each MRZ on stdin (blank lines between documents).",
    )
    parser.add_argument("--link", type=Path, required=True, help="symlink to create for the reader's port")
    parser.add_argument("--framing", choices=[f.value for f in Framing], default=Framing.CR.value)
    parser.add_argument("--baud", type=int, default=None, help="pace output like an 8N1 line at this rate")
    parser.add_argument("--events", choices=list(STATUS_PROFILES), default="none", help="status profile")
    parser.add_argument(
        "--no-blank-line", action="store_true", help="do not close documents with a blank line"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=5.0, help="seconds to wait for the host at EOF"
    )
    args = parser.parse_args(argv)
    if args.baud is not None and args.baud <= 0:
        parser.error("--baud must be positive")
    return args


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        endpoint = PtyEndpoint(args.link)
    except OSError as exc:
        print(f"cannot create {args.link}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    simulator = DocReaderSimulator(
        endpoint,
        args.framing,
        blank_line=not args.no_blank_line,
        status=STATUS_PROFILES[args.events],
        baudrate=args.baud,
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    sent = skipped = 0
    try:
        simulator.start()
        print(endpoint.path, flush=True)
        for number, lines in enumerate(_documents(sys.stdin), start=1):
            try:
                simulator.present(lines)
                sent += 1
            except ValueError:
                skipped += 1
                log.warning("document %d skipped: a line is not printable ASCII", number)
        if not simulator.wait_host_read(args.drain_timeout):
            log.warning("end of input: the host did not read everything within %.1f s", args.drain_timeout)
    except (_Terminated, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        simulator.stop()
        endpoint.close()
        log.info(
            "sent %d document(s), skipped %d, %d byte(s) on the wire", sent, skipped, simulator.bytes_sent
        )
    return 0
