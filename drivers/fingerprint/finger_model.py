"""A deterministic stand-in for real fingers and the module's matcher, for the simulator. Pure.

Each finger id has a canonical 512-byte characteristics file; every capture of that finger replaces
about a tenth of its bytes with capture-specific noise. The score counts agreeing bytes beyond what
chance gives, so two captures of one finger score about 240, a capture against the canonical file
about 270, and different fingers about 0 — the spread of scores a real module reports.
"""

from __future__ import annotations

import hashlib

from drivers.fingerprint.commands import TEMPLATE_SIZE

MAX_SCORE = 300
# The module's own floor below which Match says "no match", RegModel refuses to merge and Search
# finds nothing (the real one depends on the configured security level).
MODULE_MATCH_FLOOR = 40
_NOISE_PER_256 = 26  # bytes out of every 256 that a capture changes (about 10 %)
_CHANCE = 1 / 256  # agreement of unrelated random bytes


def _stream(label: str, size: int) -> bytes:
    return hashlib.shake_256(b"gerbang-simulated-finger|" + label.encode()).digest(size)


def template_for(finger_id: int) -> bytes:
    """The enrolled reference template of ``finger_id``: what DownChar receives for that traveller."""
    return _stream(f"finger:{finger_id}", TEMPLATE_SIZE)


def capture(finger_id: int, capture_no: int) -> bytes:
    """The characteristics of one capture of ``finger_id``; ``capture_no`` makes each one differ."""
    data = bytearray(template_for(finger_id))
    noise = _stream(f"capture:{finger_id}:{capture_no}", 2 * TEMPLATE_SIZE)
    for i in range(TEMPLATE_SIZE):
        if noise[i] < _NOISE_PER_256:
            data[i] = noise[TEMPLATE_SIZE + i]
    return bytes(data)


def score(a: bytes, b: bytes) -> int:
    if not a or len(a) != len(b):
        return 0
    agreement = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    return max(0, round(MAX_SCORE * (agreement - _CHANCE) / (1 - _CHANCE)))


def merge(a: bytes, b: bytes) -> bytes | None:
    """RegModel: one template from two captures of the same finger, ``None`` when they differ."""
    if score(a, b) < MODULE_MATCH_FLOOR:
        return None
    # Where the captures disagree either may be the noisy one; keeping the first is as good a guess.
    return a
