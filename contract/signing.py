"""Canonical JSON and the Ed25519 signatures over it: commands, acknowledgement watermarks, bundles.

Both sides must agree byte for byte on what is signed, so the one definition lives here. The kiosk
only ever holds PUBLIC keys; :func:`signature` is for the hub.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key


def canonical(body: Any) -> bytes:
    """Sorted keys, ``(",", ":")`` separators, UTF-8, no ASCII escaping."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(private_key: Ed25519PrivateKey, unsigned: dict[str, Any]) -> str:
    """The base64 ``signature`` field for a message whose other fields are ``unsigned``."""
    return base64.b64encode(private_key.sign(canonical(unsigned))).decode("ascii")


def signature_valid(key: Ed25519PublicKey, body: dict[str, Any]) -> bool:
    """Whether ``body["signature"]`` is ``key``'s signature over the canonical JSON of every other field."""
    signed = body.get("signature")
    if not isinstance(signed, str):
        return False
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    try:
        key.verify(base64.b64decode(signed, validate=True), canonical(unsigned))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key
