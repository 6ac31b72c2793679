"""The device end of a pseudo-terminal pair, for simulators that speak a device's wire protocol.

A simulator owns the master side; the driver opens the slave side like any serial port, through a
stable symlink (the way udev gives real devices stable names). Closing and reopening the endpoint is
how tests unplug and replug a device.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import tty
from pathlib import Path


class PtyEndpoint:
    def __init__(self, link: Path | None = None) -> None:
        self.link = link
        self.master_fd = -1
        self.slave_fd = -1
        self.slave_name = ""
        self.open()

    def open(self) -> None:
        master, slave = os.openpty()
        # Raw mode on both sides: no echo, no line discipline, no CR/LF translation — bytes are bytes.
        tty.setraw(master)
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.master_fd, self.slave_fd = master, slave
        self.slave_name = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.slave_name)
            tmp.replace(self.link)  # atomic: a driver never sees a missing or half-made link

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.slave_name

    @property
    def is_open(self) -> bool:
        return self.master_fd >= 0

    def unplug(self) -> None:
        """Vanish like a USB device: the link disappears and the driver's reads fail."""
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (self.master_fd, self.slave_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master_fd = self.slave_fd = -1

    def replug(self) -> None:
        self.unplug()
        self.open()

    def close(self) -> None:
        self.unplug()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.master_fd, view)
            view = view[written:]

    def read(self, max_bytes: int = 4096, timeout_s: float = 0.1) -> bytes:
        """Bytes the driver sent, or b"" when none arrived within ``timeout_s``."""
        if self.master_fd < 0:
            return b""
        ready, _, _ = select.select([self.master_fd], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self.master_fd, max_bytes)
        except OSError:
            return b""
