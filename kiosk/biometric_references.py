"""Where the reference biometrics for a document come from.

Now: the simulated traveller's document photo and enrolled finger. Later: the ePassport chip
(DG2 portrait) and synced enrolment records. The engine only sees this interface.
"""

from __future__ import annotations

from typing import Protocol

from drivers.interfaces import DocumentRead
from kiosk.documents.mrz import Mrz
from models.matching import ReferencePortrait


class BiometricReferenceProvider(Protocol):
    def portrait(self, read: DocumentRead, mrz: Mrz) -> ReferencePortrait | None: ...

    def fingerprint_template(self, read: DocumentRead, mrz: Mrz) -> bytes | None: ...
