"""Which screen shows which engine state. Screens follow the engine; they never decide.

A few screens outlive their state on purpose, and only while the lane is idle: "go ahead" stays
up a moment after the traveller is through, a referral long enough to be read, and the rating
after passage; a new traveller's document takes the screen back at once.
"""

from __future__ import annotations

from enum import StrEnum

from kiosk.flow.states import State


class Screen(StrEnum):
    ATTRACT = "attract"
    PLACE_PASSPORT = "place_passport"
    READING = "reading"
    CHIP = "chip"
    DOCUMENT_PROBLEM = "document_problem"
    CAMERA = "camera"
    FINGERPRINT = "fingerprint"
    PROCESSING = "processing"
    GO = "go"
    OFFICER = "officer"
    FEEDBACK = "feedback"
    OUT_OF_SERVICE = "out_of_service"
    PIN = "pin"
    MAINTENANCE = "maintenance"


SCREEN_FOR_STATE: dict[State, Screen] = {
    State.DOCUMENT_READ: Screen.READING,
    State.DOCUMENT_PROBLEM: Screen.DOCUMENT_PROBLEM,
    State.DOCUMENT_CHECKS: Screen.PROCESSING,
    State.CHIP_READ: Screen.CHIP,
    State.FACE_CAPTURE: Screen.CAMERA,
    State.FACE_MATCH: Screen.PROCESSING,
    State.FINGERPRINT: Screen.FINGERPRINT,
    State.DECISION: Screen.PROCESSING,
    State.ENTRY_OPEN: Screen.GO,
    State.PASSAGE: Screen.GO,
    State.EXIT_OPEN: Screen.GO,
    State.REFERRED: Screen.OFFICER,
    State.ABANDONED: Screen.ATTRACT,
    State.OUT_OF_SERVICE: Screen.OUT_OF_SERVICE,
}

# Screens that belong to no transaction: the lane is idle behind them.
IDLE_SCREENS = frozenset({Screen.ATTRACT, Screen.PLACE_PASSPORT, Screen.FEEDBACK})
# Screens a staff member uses; engine events do not take them away.
STAFF_SCREENS = frozenset({Screen.PIN, Screen.MAINTENANCE})


def screen_for(state: State, current: Screen) -> Screen | None:
    """The screen for a new engine ``state`` seen on ``current``; ``None`` keeps ``current``."""
    if current in STAFF_SCREENS:
        return None
    if state is State.IDLE:
        if current is Screen.OUT_OF_SERVICE:
            return Screen.ATTRACT
        if current in (Screen.GO, Screen.OFFICER) or current in IDLE_SCREENS:
            return None  # held screens end by their own timers; idle screens stay
        return Screen.ATTRACT  # the transaction ended under a working screen
    if state is State.DONE:
        return None  # "go ahead" gives way to the rating after its hold time
    if state is State.ABANDONED and current is Screen.OFFICER:
        return None  # the traveller chose the counter; the screen already says so
    target = SCREEN_FOR_STATE[state]
    return None if target is current else target
