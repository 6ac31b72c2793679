"""The local ``[safety]`` floors applied to an entitlement policy that arrives from the hub.

A signed ``policy`` bundle may make a lane stricter, never looser than the technician's file allows:
one sync key must not be able to switch off the face check of a whole fleet. A policy past a floor is
refused as a whole (see config.floors for why refusing beats clamping).
"""

from __future__ import annotations

from config import SafetySection
from kiosk.reference_data import PolicyRules

# How much of the chip a lane uses, least to most.
_CHIP_ORDER = ("never", "if_present", "always")


def policy_floor_violation(rules: PolicyRules, floors: SafetySection) -> tuple[str, str] | None:
    """``(setting, detail)`` of the first rule below ``floors``, or ``None`` when the policy keeps them."""
    if floors.face_match_required and not rules.face_match_required:
        return "face_match_required", "the local floor requires the face check"
    if _CHIP_ORDER.index(rules.chip_required) < _CHIP_ORDER.index(floors.min_chip_required):
        return "chip_required", f"{rules.chip_required} is below the local floor {floors.min_chip_required}"
    if rules.min_age_years < floors.min_age_years:
        return "min_age_years", f"{rules.min_age_years} is below the local floor {floors.min_age_years}"
    return None
