"""Which wire does what: logical gate channels, their polarity and the lock semantics of each door.

Backends move raw bits (a GPIO level, a Modbus coil or discrete input). Everything above them talks
in logical terms ("the entry door is unlocked", "the exit beam is broken"). This module is the one
place where the two meet, so a relay board that is active-low, a normally-closed beam sensor or a
maglock that must be energised to *lock* is a configuration line, not a code change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Door(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


class Output(StrEnum):
    ENTRY_LOCK = "entry_lock"
    EXIT_LOCK = "exit_lock"
    LAMP_GREEN = "lamp_green"
    LAMP_RED = "lamp_red"
    BUZZER = "buzzer"


class Input(StrEnum):
    ENTRY_DOOR_CLOSED = "entry_door_closed"
    EXIT_DOOR_CLOSED = "exit_door_closed"
    ENTRY_BEAM = "entry_beam"  # active: the beam is broken
    EXIT_BEAM = "exit_beam"
    LANE_PRESENCE = "lane_presence"  # area sensor: someone is inside the lane
    TAILGATE = "tailgate"  # second-person sensor
    EMERGENCY_RELEASE = "emergency_release"


LOCK_OUTPUT = {Door.ENTRY: Output.ENTRY_LOCK, Door.EXIT: Output.EXIT_LOCK}
DOOR_CONTACT = {Door.ENTRY: Input.ENTRY_DOOR_CLOSED, Door.EXIT: Input.EXIT_DOOR_CLOSED}
REQUIRED_OUTPUTS = frozenset({Output.ENTRY_LOCK, Output.EXIT_LOCK})
# Without both beams the lane cannot tell that anyone entered or left.
REQUIRED_INPUTS = frozenset({Input.ENTRY_BEAM, Input.EXIT_BEAM})


@dataclass(frozen=True)
class ChannelMap:
    """Logical channel → raw address (GPIO pin or Modbus address), with polarity."""

    outputs: Mapping[Output, int]
    inputs: Mapping[Input, int]
    active_low: frozenset[Output | Input] = frozenset()
    # Per door: True when energising the relay unlocks (fail-secure strike), False when energising
    # locks (fail-safe maglock). The defaults make a power cut leave the entry locked and the
    # exit free, which is the lane's safe state.
    unlock_energised: Mapping[Door, bool] = field(
        default_factory=lambda: {Door.ENTRY: True, Door.EXIT: False}
    )

    # --- raw ↔ logical -------------------------------------------------------------------------

    def raw_output(self, output: Output, active: bool) -> bool:
        return active != (output in self.active_low)

    def logical_output(self, output: Output, raw: bool) -> bool:
        return raw != (output in self.active_low)

    def logical_inputs(self, raw: Mapping[Input, bool]) -> dict[Input, bool]:
        wired = (name for name in raw if name in self.inputs)
        return {name: raw[name] != (name in self.active_low) for name in wired}

    def lock_raw(self, door: Door, unlocked: bool) -> bool:
        """The raw bit that puts ``door``'s lock into the wanted state."""
        energised = unlocked == self.unlock_energised[door]
        return self.raw_output(LOCK_OUTPUT[door], energised)

    def lock_unlocked(self, door: Door, raw: bool) -> bool:
        energised = self.logical_output(LOCK_OUTPUT[door], raw)
        return energised == self.unlock_energised[door]

    def safe_raw_outputs(self) -> dict[Output, bool]:
        """Entry locked, exit free for egress, red lamp on, everything else off."""
        wanted = {Output.LAMP_RED: True}
        raw = {out: self.raw_output(out, wanted.get(out, False)) for out in self.outputs}
        raw[Output.ENTRY_LOCK] = self.lock_raw(Door.ENTRY, unlocked=False)
        raw[Output.EXIT_LOCK] = self.lock_raw(Door.EXIT, unlocked=True)
        return raw
