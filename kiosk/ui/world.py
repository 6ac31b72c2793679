"""The simulated world in front of a simulated lane: who can be sent to the gate, and faults.

A pool of travellers of every archetype is made up front and their reference data (e-visas,
watchlist) is loaded into the store, as the hub would sync it, so each archetype ends the way the
population module says it must.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from drivers.simulated.lane import SimulatedLane
from kiosk.app import Kiosk
from kiosk.simulation.population import ARCHETYPE_NAMES, SimulatedTraveller, reference_datasets, traveller_of
from kiosk.store import canonical_sha256

PER_ARCHETYPE = 4  # distinct people per archetype, so repeated injections are not one person


class SimulatedWorld:
    def __init__(self, kiosk: Kiosk, seed: int) -> None:
        self.kiosk = kiosk
        self.lane: SimulatedLane = kiosk.lane
        today = kiosk.clock.now().date()
        self.pool: dict[str, list[SimulatedTraveller]] = {
            name: [traveller_of(name, seed, today, index=position * 100 + k) for k in range(PER_ARCHETYPE)]
            for position, name in enumerate(ARCHETYPE_NAMES)
        }
        self._next: dict[str, Iterator[SimulatedTraveller]] = {
            name: itertools.cycle(people) for name, people in self.pool.items()
        }
        everyone = [t for people in self.pool.values() for t in people]
        datasets = reference_datasets(everyone, kiosk.hasher, today)
        for name, records in datasets.items():
            # A version names its content, as in the headless run.
            kiosk.store.reference_data.apply(name, f"sim-{canonical_sha256(records)[:16]}", records)

    def arrive(self, archetype: str) -> SimulatedTraveller:
        """The next traveller of ``archetype`` steps up to the gate. May block briefly: not on the UI
        thread (the simulated reader holds the lane's lock while it waits)."""
        traveller = next(self._next[archetype])
        self.lane.arrive(traveller)
        return traveller

    def leave(self) -> None:
        self.lane.leave()
