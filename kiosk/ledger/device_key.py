"""The device's Ed25519 signing key for ledger heads (``security.device_key_file``).

Created on first start when absent (0600, its folder 0700), so every kiosk can sign from day one;
provisioning may place one instead, and then this only loads it. Only the public half ever leaves the
device (with each head, by its key id, and to the hub at provisioning).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)


class DeviceKeyError(RuntimeError):
    """The device key file is missing (and may not be created), unreadable or not an Ed25519 key."""


def load_device_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    if not path.exists():
        if not create:
            raise DeviceKeyError(f"device key file {path} does not exist")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process (the agent) created it first: load theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise DeviceKeyError(f"device key file {path} cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DeviceKeyError(f"device key file {path} is not an Ed25519 private key")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
