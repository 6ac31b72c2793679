"""Document pseudonyms for telemetry: HMAC under a random per-kiosk key that rotates every epoch.

The fleet-key hash (:mod:`kiosk.privacy`) must stay on the device: it is the same on every kiosk
and every year, so the hub could follow one passport everywhere, and a leaked fleet key reverses it
by enumerating the few document numbers an issuer uses. Events carry this pseudonym instead. Within
one epoch, on one kiosk, the same document gives the same pseudonym (a repeated attempt, a tailgate
re-try are visible); across kiosks or epochs nothing links, because the key is this kiosk's own and
an epoch's key is destroyed once the epoch is over, so not even the device can re-link afterwards.
See docs/privacy.md.

Epochs are aligned to the Unix epoch in UTC (epoch ``i`` covers ``[i*epoch_s, (i+1)*epoch_s)``);
the key of each lives in ``key_dir`` as ``epoch-<epoch_s>-<i>.key`` (hex, 0600), so a restart within
the epoch keeps its pseudonyms. Blocking (file I/O): called on the engine's thread.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kiosk.privacy import normalise

KEY_BYTES = 32
_KEY_FILE = re.compile(r"^epoch-\d+-\d+\.key$")


class PseudonymKeyError(RuntimeError):
    """An epoch key cannot be made, read or destroyed."""


class Pseudonymiser:
    def __init__(self, key_dir: Path, epoch_s: int, now: Callable[[], datetime]) -> None:
        if epoch_s <= 0:
            raise ValueError(f"epoch_s must be positive, got {epoch_s}")
        self.key_dir = key_dir
        self.epoch_s = epoch_s
        self.now = now
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._key = b""

    def epoch(self) -> int:
        return int(self.now().timestamp()) // self.epoch_s

    def document(self, issuing_state: str, document_number: str) -> str:
        """The pseudonym of a document in the current epoch: issuing state plus number, as for the
        fleet-key hash, under a different domain so the two can never be confused."""
        epoch, key = self._current()
        message = "\x1f".join(
            (
                "doc-pseudonym",
                str(self.epoch_s),
                str(epoch),
                normalise(issuing_state),
                normalise(document_number),
            )
        )
        return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()

    def rotate(self) -> None:
        """Make sure the current epoch has its key and every other epoch's key is gone. At start and
        then whenever the epoch changes, so a kiosk idle over midnight still destroys the old key."""
        self._current()

    def _current(self) -> tuple[int, bytes]:
        epoch = self.epoch()
        with self._lock:
            if epoch != self._epoch:
                self._key = self._load_or_create(epoch)
                self._destroy_all_but(self._path(epoch))
                self._epoch = epoch
            return epoch, self._key

    def _path(self, epoch: int) -> Path:
        return self.key_dir / f"epoch-{self.epoch_s}-{epoch}.key"

    def _load_or_create(self, epoch: int) -> bytes:
        path = self._path(epoch)
        try:
            self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return self._read(path)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(KEY_BYTES) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return self._read(path)
        except OSError as exc:
            raise PseudonymKeyError(f"pseudonym key {path}: {exc.strerror or exc}") from exc

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            key = bytes.fromhex(path.read_text().strip())
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise PseudonymKeyError(f"pseudonym key {path} is not {KEY_BYTES} bytes of hex")
        return key

    def _destroy_all_but(self, keep: Path) -> None:
        for path in self.key_dir.iterdir():
            if path != keep and _KEY_FILE.match(path.name):
                _destroy(path)


def _destroy(path: Path) -> None:
    """Overwrite, then unlink: on a plain filesystem the old key's bytes do not linger in free blocks
    (flash wear-levelling may still keep a copy: a limit docs/privacy.md states)."""
    try:
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PseudonymKeyError(f"could not destroy old pseudonym key {path}: {exc.strerror or exc}") from exc
