"""The local ``[safety]`` ceilings applied to the hub's fleet settings (a signed ``config`` bundle).

Refused as a whole rather than clamped: a clamped bundle would run settings the hub never signed while
the hub's console shows the version it sent as in force; refused, the previous settings stay, and the
alert names the setting so the hub can fix the bundle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from config.schema import SafetySection


class SafetyFloorError(ValueError):
    """A hub setting goes past a local safety ceiling; ``setting`` names it (``section.key``)."""

    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"key '{setting}': {detail}")
        self.setting = setting


def _fmr(operating_point: str) -> float:
    # "fmr_1e-3" -> 0.001; the schema's pattern guarantees the shape once the value has been validated.
    return float(operating_point.removeprefix("fmr_"))


_Check = Callable[[Any, SafetySection], str | None]


def _at_most(limit: Callable[[SafetySection], float], value: Any, floors: SafetySection) -> str | None:
    ceiling = limit(floors)
    return f"{value} is above the local ceiling {ceiling}" if value > ceiling else None


def _ceiling(limit: Callable[[SafetySection], float]) -> _Check:
    return lambda value, floors: _at_most(limit, value, floors)


def _face_fmr(value: Any, floors: SafetySection) -> str | None:
    if _fmr(value) > floors.max_face_fmr:
        return f"{value} is looser than the local ceiling fmr {floors.max_face_fmr:g}"
    return None


_DOORS = _ceiling(lambda f: f.max_door_backstop_s)
CHECKS: dict[tuple[str, str], _Check] = {
    ("face", "max_attempts"): _ceiling(lambda f: f.max_face_attempts),
    ("face", "operating_point"): _face_fmr,
    ("fingerprint", "max_attempts"): _ceiling(lambda f: f.max_fingerprint_attempts),
    ("doors", "entry_unlocked_max_s"): _DOORS,
    ("doors", "exit_unlocked_max_s"): _DOORS,
    ("doors", "door_open_max_s"): _DOORS,
    ("agent", "outbox_retention_days"): _ceiling(lambda f: f.max_outbox_retention_days),
    ("agent", "command_freshness_s"): _ceiling(lambda f: f.max_command_freshness_s),
}


def check_settings_floors(settings: Mapping[str, Mapping[str, Any]], floors: SafetySection) -> None:
    """Raise :class:`SafetyFloorError` for the first hub setting past ``floors``.

    ``settings`` must already have validated against the schema (types and ranges are then right).
    """
    for section, values in settings.items():
        for key, value in values.items():
            check = CHECKS.get((section, key))
            problem = None if check is None else check(value, floors)
            if problem is not None:
                raise SafetyFloorError(f"{section}.{key}", problem)
