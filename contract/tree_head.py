"""Signed tree heads of a kiosk's audit ledger (RFC 9162 §4.10 in spirit, JSON on the wire).

A head commits the device to the first ``size`` entries of its ledger (:mod:`contract.merkle`): once
one has left the kiosk, a rewrite of history there shows as a root that no consistency proof joins to
it. The device signs with its own Ed25519 key (the kiosk holds this private key; the hub only its
public half) over the canonical JSON of every field but ``signature`` (:mod:`contract.signing`).

Wire form (``tree-head.schema.json``)::

    {"schema": 1, "size": 120, "root": "<64 hex>", "ts": "2026-...Z", "key_id": "<16 hex>",
     "signature": "<base64>"}

``root`` is lowercase hex like every digest in the contract; ``signature`` base64 like every other
signature in it. ``key_id`` is the first 16 hex digits of SHA-256 of the raw 32-byte public key: it
names which device key signed, so a hub holding several (a key rotation) picks the right one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from contract.merkle import HASH_SIZE
from contract.signing import signature, signature_valid

SCHEMA_VERSION = 1
KEY_ID_HEX = 16
FIELDS = frozenset({"schema", "size", "root", "ts", "key_id", "signature"})
_HEX = re.compile(r"^[0-9a-f]+$")


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Short name of a device key: the first 16 hex digits of SHA-256 of its raw public bytes."""
    return hashlib.sha256(public_key_raw(key)).hexdigest()[:KEY_ID_HEX]


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head; build one with :func:`sign_head`, check it with :meth:`verify`."""

    size: int
    root: bytes
    ts: str
    key_id: str
    signature: bytes

    def unsigned(self) -> dict[str, Any]:
        """The fields the signature covers, as they travel."""
        return {
            "schema": SCHEMA_VERSION,
            "size": self.size,
            "root": self.root.hex(),
            "ts": self.ts,
            "key_id": self.key_id,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned(), "signature": base64.b64encode(self.signature).decode("ascii")}

    def verify(self, key: Ed25519PublicKey) -> bool:
        """Whether ``key`` is the key this head names and its signature over the head is valid."""
        return self.key_id == key_id(key) and signature_valid(key, self.to_json())

    @classmethod
    def from_json(cls, body: object) -> TreeHead:
        """Parse the wire form; ``ValueError`` names the first thing wrong (the signature is not checked)."""
        if not isinstance(body, dict) or set(body) != FIELDS:
            raise ValueError(f"a tree head has exactly the fields {sorted(FIELDS)}")
        if body["schema"] != SCHEMA_VERSION:
            raise ValueError(f"tree head schema {body['schema']!r} is not {SCHEMA_VERSION}")
        size, root, ts, kid, signed = (body[k] for k in ("size", "root", "ts", "key_id", "signature"))
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("size must be a non-negative integer")
        if not isinstance(root, str) or len(root) != 2 * HASH_SIZE or not _HEX.match(root):
            raise ValueError("root must be 64 lowercase hex digits")
        if not isinstance(kid, str) or len(kid) != KEY_ID_HEX or not _HEX.match(kid):
            raise ValueError(f"key_id must be {KEY_ID_HEX} lowercase hex digits")
        if not isinstance(ts, str) or not ts:
            raise ValueError("ts must be a timestamp string")
        try:
            raw = base64.b64decode(signed, validate=True) if isinstance(signed, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 64:
            raise ValueError("signature must be a base64 Ed25519 signature")
        return cls(size=size, root=bytes.fromhex(root), ts=ts, key_id=kid, signature=raw)


def sign_head(private_key: Ed25519PrivateKey, size: int, root: bytes, ts: str) -> TreeHead:
    """The device's signed head over the first ``size`` entries whose root is ``root``."""
    kid = key_id(private_key.public_key())
    unsigned = TreeHead(size=size, root=root, ts=ts, key_id=kid, signature=b"").unsigned()
    signed = base64.b64decode(signature(private_key, unsigned))
    return TreeHead(size=size, root=root, ts=ts, key_id=kid, signature=signed)
