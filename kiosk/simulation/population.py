"""A seeded population of simulated travellers, with the reference data that makes them who they are.

Every archetype a border post meets is here, each with the decision the lane must reach, so a run
over the population checks the whole system. Names are synthetic; no real person is modelled.
Dates are relative to the simulation's ``today``, so a seed gives the same decisions on any day.
With :class:`FaceImages` the travellers also get real faces (photos of a face set such as LFW), so the
real face pipeline can run on them; nothing about those photos' subjects is used beyond the images.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kiosk.documents.mrz import MrzFormat, format_mrz
from kiosk.privacy import IdentifierHasher
from kiosk.reference_data import Dataset, PolicyRules
from kiosk.simulation.chip_pki import trust_records

CITIZEN = "IDN"
VISA_EXEMPT = ("BRN", "KHM", "LAO", "MYS", "MMR", "PHL", "SGP", "THA", "VNM", "TLS")
VISA_REQUIRED = ("AUS", "USA", "GBR", "JPN", "DEU", "NLD", "FRA", "CHN", "IND", "KOR")

_NATIONALITIES = {
    "citizen": (CITIZEN,),
    "visa_exempt": VISA_EXEMPT,
    "evisa": VISA_REQUIRED,
    "missing_visa": VISA_REQUIRED,
}
_SYLLABLES = ("ka", "ri", "to", "ma", "su", "na", "de", "wi", "lo", "pa", "sa", "ne", "ru", "ti", "ba", "go")


@dataclass(frozen=True)
class Archetype:
    name: str
    weight: float
    expected: str  # OPEN, REFER or ABANDONED


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("citizen", 0.30, "OPEN"),
    Archetype("visa_exempt", 0.14, "OPEN"),
    Archetype("evisa", 0.14, "OPEN"),
    Archetype("expired_passport", 0.05, "REFER"),
    Archetype("missing_visa", 0.05, "REFER"),
    Archetype("minor", 0.05, "REFER"),
    Archetype("watchlisted", 0.03, "REFER"),
    Archetype("lost_stolen", 0.02, "REFER"),
    Archetype("impostor", 0.05, "REFER"),
    Archetype("damaged_mrz", 0.03, "REFER"),
    Archetype("walks_away", 0.05, "ABANDONED"),
    Archetype("does_not_enter", 0.04, "ABANDONED"),
    Archetype("tailgating", 0.05, "REFER"),
    # The passport chip (kiosk.simulation.passports): expected in an ePassport-only lane (LANE_POLICY).
    Archetype("chip_clone", 0.02, "REFER"),  # AA signed with another key: CHIP_CLONE_SUSPECTED
    Archetype("chip_tampered", 0.02, "REFER"),  # DG2 changed after signing: CHIP_NOT_AUTHENTIC
    Archetype("chip_missing", 0.02, "REFER"),  # no chip: CHIP_NOT_FOUND
    Archetype("dg1_mismatch", 0.02, "REFER"),  # DG1 is not the printed MRZ: DG1_MRZ_MISMATCH
)
ARCHETYPE_NAMES = tuple(a.name for a in ARCHETYPES)
# Which chip each archetype carries; everyone else's is genuine.
_CHIPS = {
    "chip_clone": "clone",
    "chip_tampered": "tampered",
    "chip_missing": "missing",
    "dg1_mismatch": "dg1_differs",
}
# The simulated lane's policy: an ePassport-only lane, as airport e-gates are.
LANE_POLICY = PolicyRules(chip_required="always")


@dataclass(frozen=True)
class SimulatedTraveller:
    id: str
    archetype: str
    expected: str
    mrz_lines: tuple[str, ...]
    issuing_state: str
    nationality: str
    document_number: str
    surname: str
    given_names: str
    birth_date: date
    expiry_date: date
    face_id: str  # whose face is in front of the camera
    portrait_face_id: str  # whose face is on the document
    finger_id: int
    enrolled_finger_id: int
    document_presentations: int = 1  # how often they put the document on the reader
    guidance_frames: int = 0  # frames before they stand well enough to be acquired
    walks_away: bool = False
    enters: bool = True
    tailgated: bool = False
    chip: str = "genuine"  # genuine, clone, tampered, missing, dg1_differs


def expected_decision(traveller: SimulatedTraveller, rules: PolicyRules) -> str:
    """What the lane must decide for ``traveller`` under ``rules``: a chip archetype's defect only counts
    in a lane that uses the chip, and a missing chip only in an ePassport-only lane."""
    if traveller.chip != "genuine" and rules.chip_required == "never":
        return "OPEN"
    if traveller.chip == "missing" and rules.chip_required != "always":
        return "OPEN"
    return traveller.expected


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).upper()


def _document_number(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return rng.choice(letters) + "".join(rng.choice("0123456789") for _ in range(7))


def make_traveller(rng: random.Random, index: int, archetype: Archetype, today: date) -> SimulatedTraveller:
    name = archetype.name
    # Everyone is otherwise entitled, so each archetype fails (or passes) for its own reason only.
    nationality = rng.choice(_NATIONALITIES.get(name, (CITIZEN, *VISA_EXEMPT)))
    age_years = rng.randint(4, 13) if name == "minor" else rng.randint(18, 85)
    birth = today - timedelta(days=age_years * 365 + rng.randint(30, 330))
    if name == "expired_passport":
        expiry = today - timedelta(days=rng.randint(1, 900))
    else:
        expiry = today + timedelta(days=rng.randint(400, 3500))
    surname, given = _name(rng, rng.randint(2, 4)), _name(rng, rng.randint(2, 3))
    number = _document_number(rng)
    lines = format_mrz(
        MrzFormat.TD3,
        document_code="P",
        issuing_state=nationality,
        surname=surname,
        given_names=given,
        document_number=number,
        nationality=nationality,
        birth_date=birth,
        expiry_date=expiry,
        sex=rng.choice("MF"),
    )
    if name == "damaged_mrz":
        # A scuffed birth-date check digit: readable characters, provably wrong data.
        line = lines[1]
        wrong = str((int(line[19]) + 1) % 10)
        lines = (lines[0], line[:19] + wrong + line[20:])
    face_id = f"face-{index}"
    finger = index
    return SimulatedTraveller(
        id=f"traveller-{index}",
        archetype=name,
        expected=archetype.expected,
        mrz_lines=tuple(lines),
        issuing_state=nationality,
        nationality=nationality,
        document_number=number,
        surname=surname,
        given_names=given,
        birth_date=birth,
        expiry_date=expiry,
        face_id=f"face-impostor-{index}" if name == "impostor" else face_id,
        portrait_face_id=face_id,
        finger_id=finger,
        enrolled_finger_id=finger,
        document_presentations=3 if name == "damaged_mrz" else 1,
        guidance_frames=rng.choice((0, 0, 1, 2, 4)),
        walks_away=name == "walks_away",
        enters=name != "does_not_enter",
        tailgated=name == "tailgating",
        chip=_CHIPS.get(name, "genuine"),
    )


def population(seed: int, count: int, today: date) -> list[SimulatedTraveller]:
    rng = random.Random(seed)
    weights = [a.weight for a in ARCHETYPES]
    chosen = rng.choices(ARCHETYPES, weights=weights, k=count)
    return [make_traveller(rng, i, archetype, today) for i, archetype in enumerate(chosen)]


def traveller_of(archetype: str, seed: int, today: date, index: int = 0) -> SimulatedTraveller:
    """One traveller of a named archetype (for tests and the training panel)."""
    match = next((a for a in ARCHETYPES if a.name == archetype), None)
    if match is None:
        raise ValueError(f"unknown archetype {archetype!r}; known: {', '.join(ARCHETYPE_NAMES)}")
    return make_traveller(random.Random(f"{seed}:{archetype}:{index}"), index, match, today)


def reference_datasets(
    travellers: list[SimulatedTraveller],
    hasher: IdentifierHasher,
    today: date,
    rules: PolicyRules = LANE_POLICY,
) -> dict[Dataset, Any]:
    """The reference data a hub would sync for this population (the CSCAs of its chips among it)."""
    evisa = [
        {
            "document_hash": hasher.document(t.issuing_state, t.document_number),
            "nationality": t.nationality,
            "kind": "e-visa",
            "valid_from": (today - timedelta(days=10)).isoformat(),
            "valid_until": (today + timedelta(days=60)).isoformat(),
        }
        for t in travellers
        if t.archetype == "evisa"
    ]
    # Record ids as a hub numbers its records: nothing of the traveller in them.
    watchlist = [
        {
            "record_id": f"sim-watch-{i}",
            "subject_hash": hasher.person(t.nationality, t.surname, t.given_names, t.birth_date),
            "match_on": "person",
            "category": "watchlist",
        }
        for i, t in enumerate(t for t in travellers if t.archetype == "watchlisted")
    ] + [
        {
            "record_id": f"sim-lost-{i}",
            "subject_hash": hasher.document(t.issuing_state, t.document_number),
            "match_on": "document",
            "category": "lost_stolen",
        }
        for i, t in enumerate(t for t in travellers if t.archetype == "lost_stolen")
    ]
    return {
        Dataset.POLICY: rules.model_dump(mode="json"),
        Dataset.VISA_EXEMPT: [{"nationality": n, "max_stay_days": 30} for n in VISA_EXEMPT],
        Dataset.EVISA: evisa,
        Dataset.WATCHLIST: watchlist,
        # Every state the simulation issues passports for, as a hub syncs every CSCA it trusts: a
        # traveller who was not in the population (the training panel, a test) still has a known chip.
        Dataset.CHIP_TRUST: trust_records((CITIZEN, *VISA_EXEMPT, *VISA_REQUIRED)),
    }


class FaceImages:
    """Real faces for simulated travellers, from a folder laid out like LFW: ``<Person>/<Person>_NNNN.jpg``.

    A traveller's portrait is one photo of a person with at least two; the camera shows another photo
    of the same person, or for an impostor (whose ``face_id`` differs from the portrait's) a photo of
    someone else. Who and which photo follow from the seed and the face ids only, so a seed always
    gives the same faces.
    """

    def __init__(self, folder: Path, seed: int) -> None:
        try:
            people = [
                images
                for person in sorted(p for p in folder.iterdir() if p.is_dir())
                if len(images := sorted(person.glob("*.jpg"))) >= 2
            ]
        except OSError as exc:
            raise ValueError(f"{folder}: cannot list face images: {exc.strerror or exc}") from None
        if len(people) < 2:
            raise ValueError(f"{folder}: needs two or more people with two or more .jpg images each")
        self._people = people
        self._seed = seed

    def _draw(self, *parts: str) -> int:
        digest = hashlib.sha256("\x1f".join((str(self._seed), *parts)).encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def _person(self, face_id: str) -> int:
        return self._draw("person", face_id) % len(self._people)

    def portrait_path(self, traveller: SimulatedTraveller) -> Path:
        images = self._people[self._person(traveller.portrait_face_id)]
        return images[self._draw("portrait", traveller.portrait_face_id) % len(images)]

    def live_path(self, traveller: SimulatedTraveller) -> Path:
        own = self._person(traveller.portrait_face_id)
        if traveller.face_id == traveller.portrait_face_id:
            images = self._people[own]
            # Any photo but the portrait itself: a step of 1..n-1 from it.
            step = 1 + self._draw("live", traveller.face_id) % (len(images) - 1)
            return images[(images.index(self.portrait_path(traveller)) + step) % len(images)]
        other = self._person(traveller.face_id)
        if other == own:
            other = (other + 1) % len(self._people)
        images = self._people[other]
        return images[self._draw("live", traveller.face_id) % len(images)]

    def portrait_image(self, traveller: SimulatedTraveller) -> np.ndarray:
        return _read_rgb(self.portrait_path(traveller))

    def live_image(self, traveller: SimulatedTraveller) -> np.ndarray:
        return _read_rgb(self.live_path(traveller))


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
