"""What reading and checking the chip found, as the policy sees it (:func:`kiosk.policy.assess_chip`).

Built by whoever reads the chip; holds results only, never DG1, the portrait or any other chip content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kiosk.chip.passive import PassiveError

if TYPE_CHECKING:
    from kiosk.chip.reading import ChipReadResult


@dataclass(frozen=True)
class ChipOutcome:
    found: bool  # a chip answered on the reader
    access: Literal["PACE", "BAC"] | None = None  # None: access control failed (or no chip)
    read_ok: bool = False  # EF.COM, EF.SOD, DG1 and DG2 were read completely
    # Passive authentication's findings; none means it passed (it is only meaningful once read_ok).
    passive_errors: tuple[PassiveError, ...] = ()
    active_performed: bool = False  # the chip has DG15 and answered INTERNAL AUTHENTICATE
    active_valid: bool = False
    dg1_matches: bool = False  # DG1 is the MRZ the document reader saw
    portrait_available: bool = False  # DG2 held a portrait that decoded

    @classmethod
    def absent(cls) -> ChipOutcome:
        return cls(found=False)

    @classmethod
    def from_read(cls, result: ChipReadResult) -> ChipOutcome:
        """The findings of a read (:func:`kiosk.chip.reading.read_document`), none of its content."""
        access: Literal["PACE", "BAC"] | None = (
            "PACE" if result.access == "PACE" else "BAC" if result.access == "BAC" else None
        )
        return cls(
            found=True,
            access=access,
            read_ok=True,
            passive_errors=tuple(result.passive.errors),
            active_performed=result.active.performed,
            active_valid=bool(result.active.valid),
            dg1_matches=result.mrz_match,
            portrait_available=result.portrait is not None and result.portrait.pixels is not None,
        )

    @property
    def readable(self) -> bool:
        return self.found and self.access is not None and self.read_ok

    @property
    def passive_valid(self) -> bool:
        return self.readable and not self.passive_errors

    @property
    def authentic(self) -> bool:
        """Read, signed by a trusted state, not a clone as far as AA can tell, and the document's own."""
        active_ok = self.active_valid or not self.active_performed
        return self.passive_valid and active_ok and self.dg1_matches
