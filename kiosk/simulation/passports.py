"""The chips in simulated travellers' passports: test passports (:mod:`kiosk.chip.issue`) signed by a
test PKI, served by :class:`~drivers.chip.card.SimulatedPassport` on the lane's in-process chip slot.

Signed by the process's test PKI (:mod:`kiosk.simulation.chip_pki`), whose CSCAs reach the kiosk's
trust store as the simulated population's ``chip_trust`` dataset, as a hub would sync them.

The portrait on the chip is the traveller's LFW photo when the run has real faces (the ONNX matcher
then compares the live face with it), otherwise the specimen drawing with the identity mark the
simulated matcher reads (:func:`models.simulated.stamp_face_mark`). Which chip a traveller carries
(genuine, a clone, tampered, none, a DG1 that is not the printed MRZ) is their ``chip`` field.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from drivers.chip.card import SimulatedPassport
from drivers.chip.lds import face
from kiosk.chip import specimen
from kiosk.chip.countries import alpha2
from kiosk.chip.issue import Portrait, build_lds, portrait_from_file
from kiosk.documents.mrz import MrzFormat, format_mrz
from kiosk.simulation.chip_pki import country_pki
from kiosk.simulation.population import FaceImages, SimulatedTraveller
from models.simulated import stamp_face_mark

AA_CURVE = ec.SECP256R1  # Active Authentication keys: EC keys are made in microseconds, RSA in tens of ms


def _choice(traveller: SimulatedTraveller, what: str, options: int) -> int:
    return hashlib.sha256(f"{traveller.id}\x1f{what}".encode()).digest()[0] % options


class PassportOffice:
    """Issues (once, then keeps) the passport chip of each simulated traveller who reaches the gate."""

    def __init__(self, faces: FaceImages | None = None) -> None:
        self.faces = faces
        # By the whole traveller: ids repeat across seeds (traveller_of gives index 0 to everyone).
        self._issued: dict[SimulatedTraveller, SimulatedPassport | None] = {}

    def passport_of(self, traveller: SimulatedTraveller) -> SimulatedPassport | None:
        if traveller not in self._issued:
            self._issued[traveller] = self.issue(traveller)
        return self._issued[traveller]

    def issue(self, traveller: SimulatedTraveller) -> SimulatedPassport | None:
        if traveller.chip == "missing":
            return None
        country = alpha2(traveller.issuing_state)
        if country is None:
            return None
        _csca, ds = country_pki(country)
        if traveller.chip == "dg1_differs":
            on_chip = _mrz(traveller, traveller.surname[::-1] + "X")
        elif traveller.archetype == "damaged_mrz":
            on_chip = _mrz(traveller, traveller.surname)  # the print is scuffed, the chip is not
        else:
            on_chip = list(traveller.mrz_lines)
        aa_key = ec.generate_private_key(AA_CURVE())
        # Half the chips offer PACE (as passports issued since 2014 do), half only BAC.
        pace = _choice(traveller, "pace", 2) == 0
        lds = build_lds(on_chip, self._portrait(traveller), ds, aa_key, pace=pace)
        if traveller.chip == "tampered":
            # The classic forgery: another person's photo put in after the issuer signed the chip.
            swapped = self._portrait(
                dataclasses.replace(traveller, portrait_face_id=f"{traveller.face_id}-x")
            )
            lds["DG2"] = face.build_dg2(
                [face.FaceImage(swapped.format, swapped.width, swapped.height, swapped.data)]
            )
        if traveller.chip == "clone":
            # A copy of the files without the chip's private key: it signs AA challenges with its own.
            aa_key = ec.generate_private_key(AA_CURVE())
        return SimulatedPassport(lds, aa_key=aa_key)

    def _portrait(self, traveller: SimulatedTraveller) -> Portrait:
        if self.faces is not None:
            return portrait_from_file(self.faces.portrait_path(traveller), jpeg2000=False)
        drawing = stamp_face_mark(_specimen(_choice(traveller, "drawing", 16)), traveller.portrait_face_id)
        # Some chips store their portrait as JPEG 2000, as some issuers do: one in 32 here, because
        # OpenCV takes ~65 ms to encode one (JPEG: 0.3 ms) and a headless run issues a chip per traveller.
        fmt = specimen.JPEG2000 if _choice(traveller, "format", 32) == 0 else specimen.JPEG
        data = specimen.encode(drawing, fmt)
        height, width = drawing.shape[:2]
        return Portrait(face.JPEG2000 if fmt == specimen.JPEG2000 else face.JPEG, width, height, data)


@functools.cache
def _specimen(seed: int) -> Any:
    return specimen.portrait(seed=seed)


def _mrz(traveller: SimulatedTraveller, surname: str) -> list[str]:
    """The traveller's MRZ as issued, with ``surname``: another one still opens the chip with the printed
    MRZ (number and dates are the same), but then DG1 is not what the document reader saw."""
    return list(
        format_mrz(
            MrzFormat.TD3,
            document_code="P",
            issuing_state=traveller.issuing_state,
            surname=surname,
            given_names=traveller.given_names,
            document_number=traveller.document_number,
            nationality=traveller.nationality,
            birth_date=traveller.birth_date,
            expiry_date=traveller.expiry_date,
            sex=traveller.mrz_lines[1][20],
        )
    )
