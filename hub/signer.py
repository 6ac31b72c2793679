"""The hub's key pairs and command signer. The PRIVATE keys live only here; kiosks get the public halves."""

from __future__ import annotations

import os
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.signing import signature

PRIVATE_NAME = "hub_command_key.pem"
PUBLIC_NAME = "hub_command_key.pub.pem"
SYNC_PRIVATE_NAME = "hub_sync_key.pem"
SYNC_PUBLIC_NAME = "hub_sync_key.pub.pem"
# One pair per role: a leaked bundle key must not open doors, nor a leaked command key rewrite a watchlist.
KEY_NAMES = {"command": (PRIVATE_NAME, PUBLIC_NAME), "sync": (SYNC_PRIVATE_NAME, SYNC_PUBLIC_NAME)}


def keygen(out_dir: Path, role: str = "command") -> tuple[Path, Path]:
    """Write a new Ed25519 pair; refuses to overwrite so a live fleet key is never lost by accident."""
    if role not in KEY_NAMES:
        raise ValueError(f"unknown key role {role!r} (known: {', '.join(KEY_NAMES)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    private_name, public_name = KEY_NAMES[role]
    private_path, public_path = out_dir / private_name, out_dir / public_name
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL + mode at creation: the private key is never world-readable, not even for an instant.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def sign_command(
    private_key: Ed25519PrivateKey,
    name: str,
    target: dict[str, str],
    args: dict[str, Any] | None = None,
    *,
    issued_at: datetime | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command_id": str(uuid.uuid4()),
        "name": name,
        "issued_at": (issued_at or datetime.now(UTC)).isoformat(),
        "nonce": secrets.token_hex(16),
        "target": dict(target),
        "args": dict(args or {}),
    }
    body["signature"] = signature(private_key, body)
    return body


def sign_ack(
    private_key: Ed25519PrivateKey, target: dict[str, str], seq: int, *, issued_at: datetime | None = None
) -> dict[str, Any]:
    """The acknowledgement watermark for one kiosk (``edge_agent.ack``), signed with the command key."""
    body: dict[str, Any] = {
        "target": dict(target),
        "seq": int(seq),
        "issued_at": (issued_at or datetime.now(UTC)).isoformat(),
    }
    body["signature"] = signature(private_key, body)
    return body
