"""Enrolment: the biometrics the traveller's identity was enrolled with, which the lane compares against.

The portrait (face) and the enrolled finger (template) of the document's holder, where a lane takes
them from something other than the passport chip (whose DG2 portrait the engine reads itself): the
simulated traveller's document photo and enrolled finger; later synced enrolment records. The engine
only sees this interface. (Not to be confused with reference data,
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


class NoEnrolment:
    """No enrolment records: real travellers' only reference is their passport chip."""

    def portrait(self, read: DocumentRead, mrz: Mrz) -> ReferencePortrait | None:
        return None

    def fingerprint_template(self, read: DocumentRead, mrz: Mrz) -> bytes | None:
        return None
