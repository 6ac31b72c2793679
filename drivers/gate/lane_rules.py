"""The lane's sensor rules: snapshots of the inputs in, :class:`LaneEvent` values out.

No I/O, no threads and no clock of its own, so every rule can be tested (and fuzzed) directly.
Inputs are logical (True means the condition the input is named after, whatever the wiring), and
only wired inputs appear in a snapshot.

The rules, applied to each change in this order:

1. ``emergency_release`` turning active (or active in the first snapshot) → EMERGENCY_RELEASE.
   While it stays active, :attr:`LaneRules.emergency` is True; the IO layer keeps the entry locked
   and the exit unlocked without waiting for anyone.
2. A door contact opening (closed → open) while that door has been locked for longer than
   ``forced_grace_s`` → DOOR_FORCED. The grace covers a traveller who pushes the door just as it
   relocks.
3. ``tailgate`` (second-person sensor) turning active → TAILGATING.
4. Entry crossing: the entry beam clears after being broken, and the entry door was passable
   (unlocked, or open by its contact) when the beam broke or when it cleared. The person is then
   inside if the presence sensor sees someone; without a presence sensor, crossings alternate
   (in, out, in, ...). Outside → inside: PERSON_ENTERED; inside → outside: PERSON_RETREATED.
5. Exit crossing: the exit beam clears after being broken, the exit door was passable, and someone
   was inside → PERSON_EXITED. Someone stays inside only if the presence sensor still sees them.

A beam pulse at a locked, closed door is ignored: that is a hand or a bag, not a person passing.
The lane counts as occupied while someone is inside, the presence sensor is active, a beam is
broken or the tailgate sensor is active: when in doubt, someone is there and must not be trapped.
"""

from __future__ import annotations

from collections.abc import Mapping

from drivers.gate.channels import DOOR_CONTACT, Door, Input
from drivers.interfaces import LaneEvent

BEAMS = {Door.ENTRY: Input.ENTRY_BEAM, Door.EXIT: Input.EXIT_BEAM}
# Any of these active means someone is (or may be) in the lane.
OCCUPANCY_INPUTS = (Input.LANE_PRESENCE, Input.ENTRY_BEAM, Input.EXIT_BEAM, Input.TAILGATE)


class LaneRules:
    def __init__(self, wired: frozenset[Input], *, forced_grace_s: float = 1.0) -> None:
        self.wired = wired
        self.forced_grace_s = forced_grace_s
        self.inside = False
        self._inputs: dict[Input, bool] | None = None
        self._passable_at_break = {Door.ENTRY: False, Door.EXIT: False}
        self._forced_open = {Door.ENTRY: False, Door.EXIT: False}

    # --- state ---------------------------------------------------------------------------------

    @property
    def emergency(self) -> bool:
        return self._active(Input.EMERGENCY_RELEASE)

    @property
    def occupied(self) -> bool:
        return self.inside or any(self._active(name) for name in OCCUPANCY_INPUTS)

    @property
    def alarm(self) -> bool:
        """A local alarm is due: a door was forced and is still open, or a second person is seen."""
        return any(self._forced_open.values()) or self._active(Input.TAILGATE)

    def door_closed(self, door: Door) -> bool | None:
        """The door contact's state, or ``None`` when no contact is wired."""
        contact = DOOR_CONTACT[door]
        if contact not in self.wired or self._inputs is None:
            return None
        return self._inputs.get(contact, True)

    # --- rules ---------------------------------------------------------------------------------

    def update(
        self, inputs: Mapping[Input, bool], locked_since: Mapping[Door, float | None], now: float
    ) -> list[LaneEvent]:
        """Apply one snapshot; ``locked_since[door]`` is when that door locked, ``None`` if unlocked."""
        new = {name: bool(inputs.get(name, False)) for name in self.wired}
        old = self._inputs
        self._inputs = new
        if old is None:
            return [LaneEvent.EMERGENCY_RELEASE] if self.emergency else []

        def rose(name: Input) -> bool:
            return new.get(name, False) and not old.get(name, False)

        def fell(name: Input) -> bool:
            return old.get(name, False) and not new.get(name, False)

        events: list[LaneEvent] = []
        if rose(Input.EMERGENCY_RELEASE):
            events.append(LaneEvent.EMERGENCY_RELEASE)
        for door in Door:
            events.extend(self._door_contact(door, old, locked_since[door], now))
        if rose(Input.TAILGATE):
            events.append(LaneEvent.TAILGATING)
        for door in Door:
            beam = BEAMS[door]
            if rose(beam):
                self._passable_at_break[door] = self._passable(door, locked_since)
            elif fell(beam):
                passable = self._passable_at_break[door] or self._passable(door, locked_since)
                self._passable_at_break[door] = False
                if passable:
                    events.extend(self._crossing(door))
        return events

    def resync(self, inputs: Mapping[Input, bool]) -> list[LaneEvent]:
        """Take a snapshot after a gap in observation (a lost link) without inventing crossings.

        What happened during the gap is unknown: with a presence sensor it alone says whether
        anyone is inside; without one the last belief stands. An emergency release that began
        during the gap is still reported.
        """
        was_emergency = self.emergency
        self._inputs = {name: bool(inputs.get(name, False)) for name in self.wired}
        self._passable_at_break = {door: False for door in Door}
        if Input.LANE_PRESENCE in self.wired:
            self.inside = self._inputs[Input.LANE_PRESENCE]
        return [LaneEvent.EMERGENCY_RELEASE] if self.emergency and not was_emergency else []

    # --- helpers -------------------------------------------------------------------------------

    def _active(self, name: Input) -> bool:
        return self._inputs is not None and self._inputs.get(name, False)

    def _passable(self, door: Door, locked_since: Mapping[Door, float | None]) -> bool:
        return locked_since[door] is None or self.door_closed(door) is False

    def _door_contact(
        self, door: Door, old: Mapping[Input, bool], locked_since: float | None, now: float
    ) -> list[LaneEvent]:
        contact = DOOR_CONTACT[door]
        if contact not in self.wired:
            return []
        closed = self._active(contact)
        if closed:
            self._forced_open[door] = False
            return []
        if old.get(contact, False) and locked_since is not None and now - locked_since > self.forced_grace_s:
            self._forced_open[door] = True
            return [LaneEvent.DOOR_FORCED]
        return []

    def _crossing(self, door: Door) -> list[LaneEvent]:
        seen = self._active(Input.LANE_PRESENCE) if Input.LANE_PRESENCE in self.wired else None
        if door is Door.EXIT:
            if not self.inside:
                return []
            self.inside = bool(seen)
            return [LaneEvent.PERSON_EXITED]
        now_inside = (not self.inside) if seen is None else seen
        was_inside, self.inside = self.inside, now_inside
        if now_inside and not was_inside:
            return [LaneEvent.PERSON_ENTERED]
        if was_inside and not now_inside:
            return [LaneEvent.PERSON_RETREATED]
        return []
