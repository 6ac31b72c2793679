"""The maintenance PIN's stored form: scrypt with a random salt, in one self-describing string.

``scrypt$<n>$<r>$<p>$<salt_b64>$<hash_b64>``. A PIN has few digits, so only a slow, memory-hard hash
with a per-kiosk salt makes a leaked configuration expensive to brute-force; the parameters travel
with the hash so they can be raised later without breaking configured kiosks. The defaults take
about 40 ms on one x86 server core and, scrypt being memory-bound, an estimated 150-200 ms on a
Raspberry Pi 4 (16 MiB of memory per check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

MIN_DIGITS = 6
MAX_DIGITS = 12  # the PIN pad's own limit
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
# Bounds on what a configured hash may ask for: a hostile or mistyped string must not make one PIN
# check take many seconds or more than 64 MiB on the kiosk.
MAX_N, MAX_R, MAX_P = 2**16, 8, 2
MAX_MEMORY = 2 * 128 * MAX_N * MAX_R
FORMAT = re.compile(r"^scrypt\$(\d{1,7})\$(\d{1,2})\$(\d)\$([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*)$")
HOW_TO_HASH = "produce one with `python -m kiosk pin-hash` (it reads the PIN without echo)"


class PinHashError(ValueError):
    """A configured PIN hash that cannot be used."""


@dataclass(frozen=True)
class PinHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, encoded: str) -> PinHash:
        match = FORMAT.match(encoded)
        if match is None:
            raise PinHashError(f"a maintenance PIN hash looks like scrypt$n$r$p$salt$hash; {HOW_TO_HASH}")
        n, r, p = (int(match.group(i)) for i in (1, 2, 3))
        if n < 2 or n & (n - 1) or n > MAX_N or not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
            raise PinHashError(
                f"scrypt parameters n={n} r={r} p={p} are out of range (n a power of two up to {MAX_N}, "
                f"r up to {MAX_R}, p up to {MAX_P}); {HOW_TO_HASH}"
            )
        try:
            salt = base64.b64decode(match.group(4), validate=True)
            digest = base64.b64decode(match.group(5), validate=True)
        except binascii.Error:
            raise PinHashError(f"the maintenance PIN's salt or hash is not base64; {HOW_TO_HASH}") from None
        if len(salt) < 8 or len(digest) < 16:
            raise PinHashError(f"the salt or hash of the maintenance PIN is too short; {HOW_TO_HASH}")
        return cls(n, r, p, salt, digest)

    def matches(self, pin: str) -> bool:
        candidate = _scrypt(pin, self.salt, self.n, self.r, self.p, len(self.digest))
        return hmac.compare_digest(candidate, self.digest)


def check_pin_format(pin: str) -> None:
    """Refuse a PIN a technician should not choose: too short, too long, or not all digits."""
    if not pin.isascii() or not pin.isdigit() or not MIN_DIGITS <= len(pin) <= MAX_DIGITS:
        raise PinHashError(f"a maintenance PIN is {MIN_DIGITS} to {MAX_DIGITS} digits")


def hash_pin(pin: str) -> str:
    check_pin_format(pin)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(pin, salt, N, R, P, HASH_BYTES)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAX_MEMORY, dklen=length)
