"""Keyed hashing of personal identifiers.

Document numbers never rest in reference data in clear: both the hub (when it builds watchlists and
e-visa bundles) and the kiosk (when it looks a traveller up) hash them with HMAC-SHA256 under the
per-fleet key, so matching works while the hash is useless without the key. These hashes are for
matching on the device only and never go into an event: being the same on every kiosk for years,
they would link a passport's crossings (events carry :mod:`kiosk.pseudonyms` instead).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import unicodedata
from datetime import date
from pathlib import Path

from contract.bundles import fleet_key_id
from kiosk.at_rest import private_dir

FLEET_KEY_BYTES = 32


class FleetKeyError(RuntimeError):
    """The fleet key is missing or malformed."""


def normalise(value: str) -> str:
    """An identifier as both sides hash it: NFKC, upper case, letters and digits only."""
    text = unicodedata.normalize("NFKC", value).upper()
    return "".join(ch for ch in text if ch.isalnum())


class IdentifierHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise FleetKeyError("the fleet key must be at least 16 bytes")
        self._key = key
        # Named in the kiosk's state and checked against every hashed bundle; never the key itself.
        self.key_id = fleet_key_id(key)

    def _mac(self, domain: str, *parts: str) -> str:
        message = "\x1f".join((domain, *parts)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def document(self, issuing_state: str, document_number: str) -> str:
        """Hash of a document: issuing state plus number, as numbers are only unique per issuer."""
        return self._mac("doc", normalise(issuing_state), normalise(document_number))

    def person(self, nationality: str, surname: str, given_names: str, birth_date: date | None) -> str:
        """Hash of a person's biographic identity, for watchlist entries not tied to one document."""
        born = birth_date.isoformat() if birth_date else ""
        return self._mac("person", normalise(nationality), normalise(surname), normalise(given_names), born)


def load_fleet_key(path: Path, *, create: bool = False) -> bytes:
    """Read the fleet key (hex) from ``path``; with ``create`` make a new random one if absent."""
    if not path.exists():
        if not create:
            raise FleetKeyError(
                f"fleet key file {path} does not exist (provision it with `python -m provisioning`)"
            )
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(FLEET_KEY_BYTES) + "\n")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise FleetKeyError(f"fleet key file {path} is not hex: {exc}") from None
    if len(key) < 16:
        raise FleetKeyError(f"fleet key file {path} holds {len(key)} bytes; at least 16 are required")
    return key


def read_fleet_key_id(path: Path) -> str | None:
    """The id of the fleet key at ``path``, or ``None`` when there is no usable key there (never creates
    one). The agent asks this for every hashed bundle, so a key provisioned later counts at once."""
    try:
        return fleet_key_id(load_fleet_key(path))
    except (FleetKeyError, OSError):
        return None
