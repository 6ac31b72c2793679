"""Reference biometrics of simulated travellers: the portrait and finger they enrolled."""

from __future__ import annotations

from drivers.interfaces import DocumentRead
from drivers.simulated.lane import SimulatedLane, fingerprint_template
from kiosk.documents.mrz import Mrz
from kiosk.simulation.population import SimulatedTraveller
from models.matching import ReferencePortrait


class SimulatedReferences:
    def __init__(self, lane: SimulatedLane) -> None:
        self.lane = lane

    def _traveller(self, read: DocumentRead) -> SimulatedTraveller | None:
        traveller = self.lane.traveller
        if traveller is None or read.meta.get("traveller") != traveller.id:
            return None
        return traveller

    def portrait(self, read: DocumentRead, mrz: Mrz) -> ReferencePortrait | None:
        traveller = self._traveller(read)
        if traveller is None:
            return None
        return ReferencePortrait(
            image=None, source="simulated-document", meta={"face_id": traveller.portrait_face_id}
        )

    def fingerprint_template(self, read: DocumentRead, mrz: Mrz) -> bytes | None:
        traveller = self._traveller(read)
        return None if traveller is None else fingerprint_template(traveller.enrolled_finger_id)
