"""Reference-portrait descriptors, kept in memory for one transaction only.

The engine compares the live face with the same portrait up to ``face.max_attempts`` times; the
portrait is embedded once. Entries are keyed by a digest of the portrait's pixels (not by object
identity, which Python reuses), the cache holds at most a couple of portraits even if nobody clears it,
and :meth:`PortraitCache.clear` — called through the matcher's ``forget()`` when the transaction ends
— drops them all. Nothing is written anywhere.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class PortraitDescriptor:
    embedding: np.ndarray | None = field(repr=False)  # None when the portrait has no usable face
    reason: str  # why not, or "ok"


def _digest(image: np.ndarray) -> bytes:
    contiguous = np.ascontiguousarray(image)
    header = f"{contiguous.dtype.str}{contiguous.shape}".encode()
    return hashlib.blake2b(header + contiguous.tobytes(), digest_size=16).digest()


class PortraitCache:
    def __init__(self, max_entries: int = 2) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, PortraitDescriptor] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, image: np.ndarray, compute: Callable[[np.ndarray], PortraitDescriptor]
    ) -> PortraitDescriptor:
        key = _digest(image)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        # Computed outside the lock: embedding takes tens of milliseconds and needs no exclusion here.
        descriptor = compute(image)
        with self._lock:
            self._entries[key] = descriptor
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return descriptor

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
