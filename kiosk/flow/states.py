"""The lane's states and the only transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    IDLE = "idle"
    DOCUMENT_READ = "document_read"
    DOCUMENT_PROBLEM = "document_problem"
    DOCUMENT_CHECKS = "document_checks"
    CHIP_READ = "chip_read"
    FACE_CAPTURE = "face_capture"
    FACE_MATCH = "face_match"
    FINGERPRINT = "fingerprint"
    DECISION = "decision"
    ENTRY_OPEN = "entry_open"
    PASSAGE = "passage"
    EXIT_OPEN = "exit_open"
    DONE = "done"
    REFERRED = "referred"
    ABANDONED = "abandoned"
    OUT_OF_SERVICE = "out_of_service"


S = State
TERMINAL = frozenset({S.DONE, S.REFERRED, S.ABANDONED})

# Any state may fall to OUT_OF_SERVICE (device failure); any waiting state may end ABANDONED.
_ALWAYS = {S.OUT_OF_SERVICE}
TRANSITIONS: dict[State, frozenset[State]] = {
    state: frozenset(targets | _ALWAYS)
    for state, targets in {
        S.IDLE: {S.DOCUMENT_READ},
        S.DOCUMENT_READ: {S.DOCUMENT_CHECKS, S.DOCUMENT_PROBLEM, S.ABANDONED},
        S.DOCUMENT_PROBLEM: {S.DOCUMENT_READ, S.REFERRED, S.ABANDONED},
        S.DOCUMENT_CHECKS: {S.FACE_CAPTURE, S.FINGERPRINT, S.DECISION, S.ABANDONED},
        S.FACE_CAPTURE: {S.FACE_MATCH, S.FINGERPRINT, S.DECISION, S.ABANDONED},
        S.FACE_MATCH: {S.FACE_CAPTURE, S.FINGERPRINT, S.DECISION, S.ABANDONED},
        S.FINGERPRINT: {S.DECISION, S.ABANDONED},
        S.DECISION: {S.ENTRY_OPEN, S.REFERRED},
        S.ENTRY_OPEN: {S.PASSAGE, S.ABANDONED, S.REFERRED},
        S.PASSAGE: {S.EXIT_OPEN, S.REFERRED, S.ABANDONED},
        S.EXIT_OPEN: {S.DONE},
        S.DONE: {S.IDLE},
        S.REFERRED: {S.IDLE},
        S.ABANDONED: {S.IDLE},
        S.OUT_OF_SERVICE: {S.IDLE},
    }.items()
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(current: State, target: State) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current} -> {target} is not an allowed transition")
