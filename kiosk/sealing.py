"""The device's data key and AES-GCM sealing of the personal data the kiosk keeps.

The key is per device (never leaves it, never shared with the fleet), 32 random bytes in hex in a 0600
file in the keys directory, made on the first start. Each sealed record binds its record id as
associated data, so a ciphertext moved to another row (or another record's id) does not open.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk.at_rest import PRIVATE_FILE_MODE, check_private, private_dir

DATA_KEY_BYTES = 32
NONCE_BYTES = 12  # AES-GCM's standard nonce; random per record (far below 2^32 records per key)


class DataKeyError(RuntimeError):
    """The device data key is unusable (malformed) or a sealed record does not open."""


def load_data_key(path: Path) -> bytes:
    """The device's data key at ``path``, created on first use; the file and its directory are checked
    private (ExposedDataError otherwise)."""
    private_dir(path.parent)
    if not path.exists():
        _create(path)
    check_private((path.parent, path))
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise DataKeyError(f"data key file {path} is not hex") from None
    if len(key) != DATA_KEY_BYTES:
        raise DataKeyError(f"data key file {path} holds {len(key)} bytes; expected {DATA_KEY_BYTES}")
    return key


def _create(path: Path) -> None:
    # Written aside and linked into place: a crash leaves either no key or a whole one, and a link never
    # replaces a key another process made meanwhile.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(DATA_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class Sealer:
    """AES-256-GCM under the device data key, the record id as associated data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, record_id: str, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, record_id.encode("utf-8"))

    def open(self, record_id: str, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], record_id.encode("utf-8"))
        except InvalidTag:
            raise DataKeyError(f"sealed record {record_id} does not open under this device's key") from None
