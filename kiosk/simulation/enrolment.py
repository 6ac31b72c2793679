"""Enrolment of simulated travellers: the portrait and finger they enrolled (kiosk.enrolment)."""

from __future__ import annotations

from collections.abc import Callable

from drivers.interfaces import DocumentRead
from drivers.simulated.lane import SimulatedLane, fingerprint_template
from kiosk.documents.mrz import Mrz
from kiosk.simulation.population import FaceImages, SimulatedTraveller
from models.matching import ReferencePortrait


class SimulatedEnrolment:
    """With ``faces`` the portrait carries the traveller's real photo; without, only who it shows."""

    def __init__(
        self,
        lane: SimulatedLane,
        template_for: Callable[[int], bytes] = fingerprint_template,
        faces: FaceImages | None = None,
    ) -> None:
        self.lane = lane
        self.template_for = template_for
        self.faces = faces

    def _traveller(self, read: DocumentRead, mrz: Mrz) -> SimulatedTraveller | None:
        traveller = self.lane.traveller
        if traveller is None:
            return None
        # In-process readers tag the read; a reader on the wire only delivers the MRZ itself.
        tagged = read.meta.get("traveller")
        if tagged is not None:
            return traveller if tagged == traveller.id else None
        return traveller if mrz.document_number == traveller.document_number else None

    def portrait(self, read: DocumentRead, mrz: Mrz) -> ReferencePortrait | None:
        traveller = self._traveller(read, mrz)
        if traveller is None:
            return None
        return ReferencePortrait(
            image=None if self.faces is None else self.faces.portrait_image(traveller),
            source="simulated-document",
            meta={"face_id": traveller.portrait_face_id},
        )

    def fingerprint_template(self, read: DocumentRead, mrz: Mrz) -> bytes | None:
        traveller = self._traveller(read, mrz)
        return None if traveller is None else self.template_for(traveller.enrolled_finger_id)
