"""Enrolment: the biometrics the traveller's identity was enrolled with, which the lane compares against.

The portrait (face) and the enrolled finger (template) of the document's holder. Now: the simulated
traveller's document photo and enrolled finger. Later: the ePassport chip (DG2 portrait) and synced
enrolment records. The engine only sees this interface. (Not to be confused with reference data,
:mod:`kiosk.reference_data`: the synced datasets the entitlement policy decides on.)
"""

from __future__ import annotations

from typing import Protocol

from drivers.interfaces import DocumentRead
from kiosk.documents.mrz import Mrz
from models.matching import ReferencePortrait


class EnrolmentProvider(Protocol):
    """The enrolled portrait and finger template of the holder of the document just read (None: none)."""

    def portrait(self, read: DocumentRead, mrz: Mrz) -> ReferencePortrait | None: ...

    def fingerprint_template(self, read: DocumentRead, mrz: Mrz) -> bytes | None: ...
