"""Exponential backoff with full jitter.

Jitter matters for a fleet: after a shared outage (a broker restart, a power cut in a hall), devices
without it retry in lockstep and hit the recovering side all at once.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        initial_s: float = 0.5,
        maximum_s: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial_s <= maximum_s or factor < 1:
            raise ValueError("need 0 < initial_s <= maximum_s and factor >= 1")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.factor = factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait before the next attempt: uniform in [initial, min(max, initial·factor^n)]."""
        ceiling = min(self.maximum_s, self.initial_s * self.factor**self.attempts)
        self.attempts += 1
        return self._rng.uniform(self.initial_s, ceiling)

    def reset(self) -> None:
        self.attempts = 0
