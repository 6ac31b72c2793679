"""The simulated world in front of a simulated lane: who can be sent to the gate, and faults.

A pool of travellers of every archetype is made up front and their reference data (e-visas,
watchlist) is loaded into the store, as the hub would sync it, so each archetype ends the way the
population module says it must. The world acts on the lane and its devices, never on the engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from drivers.simulated.lane import SimulatedLane
from kiosk.privacy import IdentifierHasher
from kiosk.simulation.population import ARCHETYPE_NAMES, SimulatedTraveller, reference_datasets, traveller_of
from kiosk.simulation.seeding import seed_reference_data
from kiosk.store import Store

PER_ARCHETYPE = 4  # distinct people per archetype, so repeated injections are not one person


@runtime_checkable
class Breakable(Protocol):
    """A simulated device: faults are injected into it and mended."""

    name: str

    def fail(self, reason: str) -> None: ...

    def repair(self) -> None: ...


class SimulatedWorld:
    def __init__(
        self,
        lane: SimulatedLane,
        devices: Iterable[Breakable],
        store: Store,
        hasher: IdentifierHasher,
        seed: int,
    ) -> None:
        self.lane = lane
        self.devices = {device.name: device for device in devices}
        today = lane.clock.now().date()
        self.pool: dict[str, list[SimulatedTraveller]] = {
            name: [traveller_of(name, seed, today, index=position * 100 + k) for k in range(PER_ARCHETYPE)]
            for position, name in enumerate(ARCHETYPE_NAMES)
        }
        self._next: dict[str, Iterator[SimulatedTraveller]] = {
            name: itertools.cycle(people) for name, people in self.pool.items()
        }
        everyone = [t for people in self.pool.values() for t in people]
        seed_reference_data(store, reference_datasets(everyone, hasher, today))

    def arrive(self, archetype: str) -> SimulatedTraveller:
        """The next traveller of ``archetype`` steps up to the gate. May block briefly: not on the UI
        thread (the simulated reader holds the lane's lock while it waits)."""
        traveller = next(self._next[archetype])
        self.lane.arrive(traveller)
        return traveller

    def leave(self) -> None:
        self.lane.leave()

    @contextmanager
    def rehearsal(self) -> Iterator[SimulatedTraveller]:
        """A citizen at the gate for a self-test passage, gone again afterwards."""
        traveller = self.arrive("citizen")
        try:
            yield traveller
        finally:
            self.leave()

    def break_device(self, name: str, reason: str) -> None:
        self.devices[name].fail(reason)

    def repair_all(self) -> None:
        for device in self.devices.values():
            device.repair()
