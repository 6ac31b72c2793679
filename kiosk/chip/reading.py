"""One ePassport read as the gate does it: open the chip with the printed MRZ (PACE, else BAC), read
EF.COM, DG1, DG2, EF.SOD and DG14/DG15 when EF.COM lists them, then check what was read: DG1 against
the printed MRZ, passive authentication against the trust store, Active Authentication with a random
challenge when the chip has DG15, and the DG2 portrait decoded.

Everything stays in memory: the result holds the portrait and DG1 for the transaction only (the
README's privacy rules); nothing here writes to disk or logs a holder's data.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from drivers.chip.errors import ChipError, NoCardError, StatusError
from drivers.chip.files import DEFAULT_FILES
from drivers.chip.lds import face
from drivers.chip.lds import files as lds_files
from drivers.interfaces import ChipAccessKey, ChipReader
from kiosk.chip.active import AA_FAILED, CHALLENGE_LENGTH, verify_active_authentication
from kiosk.chip.consistency import MRZ_MISMATCH, dg1_matches_mrz
from kiosk.chip.passive import PassiveResult, passive_authentication
from kiosk.chip.trust import TrustStore
from kiosk.documents.mrz import Mrz, NotAnMrz, parse_mrz

if TYPE_CHECKING:
    import numpy as np

PORTRAIT_UNREADABLE = "PORTRAIT_UNREADABLE"  # reason code: DG2 holds no image we can decode
OPTIONAL_GROUPS = ("DG14", "DG15")  # read only when EF.COM lists them


class ChipUnreadable(ChipError):
    """The chip was opened but lacks what every ePassport has (EF.COM, DG1, DG2, EF.SOD)."""


def access_key(mrz: Mrz) -> ChipAccessKey:
    """The BAC/PACE key in a printed MRZ: document number, birth and expiry dates (YYMMDD)."""
    if mrz.birth_date is None or mrz.expiry_date is None:
        raise ValueError("the MRZ has no valid birth or expiry date: it cannot open a chip")
    return ChipAccessKey(
        mrz.document_number, mrz.birth_date.strftime("%y%m%d"), mrz.expiry_date.strftime("%y%m%d")
    )


@dataclass(frozen=True)
class Portrait:
    """The DG2 face image: the bytes as stored on the chip and, when they decode, RGB pixels."""

    format: str  # "jpeg" or "jpeg2000"
    width: int
    height: int
    data: bytes
    pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
            "bytes": len(self.data),
            "decoded": self.pixels is not None,
        }


@dataclass(frozen=True)
class ActiveResult:
    performed: bool  # the chip has DG15 (listed in EF.COM) and was challenged
    valid: bool | None  # None when not performed

    def to_json(self) -> dict[str, Any]:
        return {"performed": self.performed, "valid": self.valid}


@dataclass(frozen=True)
class ChipTiming:
    """What the read cost: APDUs and bytes over the reader, seconds per step."""

    apdus: int
    bytes_sent: int
    bytes_received: int
    access_s: float
    read_s: float  # access control and every file
    file_s: dict[str, float]
    passive_s: float
    active_s: float
    total_s: float

    def to_json(self) -> dict[str, Any]:
        rounded = {k: round(v * 1000, 1) for k, v in self.file_s.items()}
        return {
            "apdus": self.apdus,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "access_ms": round(self.access_s * 1000, 1),
            "read_ms": round(self.read_s * 1000, 1),
            "file_ms": rounded,
            "passive_ms": round(self.passive_s * 1000, 1),
            "active_ms": round(self.active_s * 1000, 1),
            "total_ms": round(self.total_s * 1000, 1),
        }


@dataclass(frozen=True)
class ChipReadResult:
    access: str  # "PACE" or "BAC"
    files: tuple[str, ...]  # names read, in reading order
    dg1: Mrz  # the MRZ stored in DG1, parsed
    mrz_match: bool  # DG1 equals the printed MRZ
    passive: PassiveResult
    active: ActiveResult
    portrait: Portrait | None  # None when DG2 holds nothing decodable (reason PORTRAIT_UNREADABLE)
    timing: ChipTiming

    @property
    def reasons(self) -> list[str]:
        """Why the document is not authentic (empty when it is), as reason codes."""
        found = [e.value for e in self.passive.errors]
        if not self.mrz_match:
            found.append(MRZ_MISMATCH)
        if self.active.performed and not self.active.valid:
            found.append(AA_FAILED)
        if self.portrait is None:
            found.append(PORTRAIT_UNREADABLE)
        return found

    @property
    def authentic(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict[str, Any]:
        return {
            "access": self.access,
            "files": list(self.files),
            "dg1": self.dg1.to_json(),
            "mrz_match": self.mrz_match,
            "passive_authentication": self.passive.to_json(),
            "active_authentication": self.active.to_json(),
            "portrait": None if self.portrait is None else self.portrait.to_json(),
            "authentic": self.authentic,
            "reasons": self.reasons,
            "timing": self.timing.to_json(),
        }


def _portrait(dg2: bytes) -> Portrait | None:
    try:
        image = face.parse_dg2(dg2)[0]
    except face.FaceError:
        return None
    try:
        pixels = face.decode_image(image.data)
    except face.FaceError:
        return Portrait(image.format, image.width, image.height, image.data)
    height, width = pixels.shape[:2]
    return Portrait(image.format, width, height, image.data, pixels)


def _listed_groups(com: bytes) -> set[str]:
    try:
        return {f"DG{n}" for n in lds_files.parse_com(com).data_groups}
    except ValueError:
        return set()  # a broken EF.COM: passive authentication reports it (COM_SOD_MISMATCH)


def _active(reader: ChipReader, content: dict[str, bytes], rng: Callable[[int], bytes]) -> ActiveResult:
    if "DG15" not in content:
        return ActiveResult(performed=False, valid=None)
    challenge = rng(CHALLENGE_LENGTH)
    try:
        response = reader.internal_authenticate(challenge)
    except NoCardError:
        raise  # the card left: the read is incomplete, not a failed check
    except StatusError:
        return ActiveResult(performed=True, valid=False)  # a chip with DG15 that will not sign
    return ActiveResult(
        True, verify_active_authentication(content["DG15"], challenge, response, content.get("DG14"))
    )


def read_document(
    reader: ChipReader,
    mrz: Mrz,
    trust: TrustStore,
    at: datetime | None = None,
    *,
    rng: Callable[[int], bytes] = os.urandom,
) -> ChipReadResult:
    """Read and check the chip on ``reader`` with the printed ``mrz``.

    Raises :class:`~drivers.chip.errors.ChipError` (its subclasses say which) when there is no
    reader or no card, access control fails (the MRZ does not open this chip), the card leaves or
    the chip cannot be read; a read chip always gives a result, authentic or not (``reasons``).
    """
    started = time.monotonic()
    session = reader.read(access_key(mrz), DEFAULT_FILES)
    content = dict(session.files)
    missing = [name for name in ("COM", "DG1", "DG2", "SOD") if name not in content]
    if missing:
        raise ChipUnreadable(f"the chip has no {', '.join(missing)}")
    # DG14/DG15 count only when EF.COM lists them (ICAO 9303-10 §4.6.1): a chip that has but does
    # not list them is judged by what it declares.
    listed = _listed_groups(content["COM"])
    for name in OPTIONAL_GROUPS:
        if name in content and name not in listed:
            del content[name]
    try:
        dg1 = parse_mrz(lds_files.parse_dg1(content["DG1"]))
    except (ValueError, NotAnMrz) as exc:
        raise ChipUnreadable(f"DG1 holds no MRZ ({type(exc).__name__})") from None

    checked = time.monotonic()
    passive = passive_authentication(content, trust, at)
    passive_s = time.monotonic() - checked
    checked = time.monotonic()
    active = _active(reader, content, rng)
    active_s = time.monotonic() - checked

    timing = ChipTiming(
        apdus=session.apdus,
        bytes_sent=session.bytes_sent,
        bytes_received=session.bytes_received,
        access_s=session.access_s,
        read_s=session.elapsed_s,
        file_s=dict(session.file_s),
        passive_s=passive_s,
        active_s=active_s,
        total_s=time.monotonic() - started,
    )
    return ChipReadResult(
        access=session.access,
        files=tuple(name for name in session.files if name in content),
        dg1=dg1,
        mrz_match=dg1_matches_mrz(content["DG1"], mrz.lines),
        passive=passive,
        active=active,
        portrait=_portrait(content["DG2"]),
        timing=timing,
    )
