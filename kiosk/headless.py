"""Headless runs: a simulated population through the real engine, for operators, CI and benches."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from common.clock import SimulatedClock
from config import Config
from drivers.interfaces import DeviceError, HealthState
from drivers.simulated.lane import SimulatedLane, fingerprint_template
from kiosk.app import Kiosk, build_kiosk
from kiosk.flow.engine import FlowEvent, TransactionOutcome
from kiosk.flow.states import State
from kiosk.privacy import FleetKeyError
from kiosk.reference_data import PolicyRules
from kiosk.simulation.population import (
    LANE_POLICY,
    SimulatedTraveller,
    expected_decision,
    population,
    reference_datasets,
)
from kiosk.simulation.seeding import seed_reference_data
from kiosk.simulation.wire import WireRig

IDLE_TIMEOUT_S = 1.0
DEVICE_CONNECT_TIMEOUT_S = 10.0
# Stages the software runs without waiting for a person; what the bench measures.
DECISION_STAGES = (
    "document_read",
    "document_checks",
    "chip_read",
    "face_capture",
    "face_match",
    "fingerprint",
    "decision",
)


def percentiles(values: Iterable[float]) -> dict[str, float]:
    data = sorted(values)
    if not data:
        return {"p50": 0.0, "p95": 0.0}
    if len(data) == 1:
        return {"p50": round(data[0], 3), "p95": round(data[0], 3)}
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return {"p50": round(cuts[49], 3), "p95": round(cuts[94], 3)}


@dataclass
class _WallTimer:
    """Real (not simulated) time per stage, from the engine's own state events."""

    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    to_decision: list[float] = field(default_factory=list)
    _last: tuple[str, float] | None = None
    _decision_start: float | None = None
    _current: dict[str, float] = field(default_factory=dict)

    def __call__(self, event: FlowEvent) -> None:
        if event.kind != "state":
            return
        now = time.perf_counter()
        if self._last is not None:
            name, started = self._last
            self._current[name] = self._current.get(name, 0.0) + (now - started) * 1000
        state = event.state
        if state is State.DOCUMENT_READ and self._decision_start is None:
            self._decision_start = now
        if self._last is not None and self._last[0] == State.DECISION and self._decision_start is not None:
            self.to_decision.append((now - self._decision_start) * 1000)
        if state is State.IDLE or state is State.OUT_OF_SERVICE:
            for name, ms in self._current.items():
                self.stages[name].append(ms)
            self._current.clear()
            self._decision_start = None
            self._last = None
        else:
            self._last = (str(state), now)


class Stage(Protocol):
    """Where simulated travellers appear: the in-process lane, or the wire rig around it."""

    def arrive(self, traveller: SimulatedTraveller) -> None: ...

    def leave(self) -> None: ...


@contextmanager
def simulated_kiosk(
    config: Config, count: int, seed: int, db: Path | None, *, wire: bool = False
) -> Iterator[tuple[Kiosk, Stage, list[SimulatedTraveller]]]:
    """A kiosk with its reference data seeded for a population, on in-process or wire devices."""
    lane = SimulatedLane(SimulatedClock(), config.simulation.device_delay_s)
    with ExitStack() as stack:
        stage: Stage = lane
        templates = fingerprint_template
        policy = LANE_POLICY
        # Decided before the wire rig puts devices on its ptys: its simulators are no real hardware.
        simulation = config.simulated
        if wire:
            rig = WireRig(
                lane, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gerbang-wire-")))
            )
            stack.callback(rig.stop)
            rig.start()
            config = rig.configure(config)
            stage, templates = rig, rig.template_for
            # Ask for fingerprints too, so the sensor's protocol is part of every transaction (a lane
            # that asks for fingers takes chips when there are any: the chip has no readable finger).
            policy = PolicyRules(fingerprint_required="always", chip_required="if_present")
        kiosk = build_kiosk(
            config, store_path=db, lane=lane, fingerprint_templates=templates, simulation=simulation
        )
        stack.callback(kiosk.close)
        if kiosk.hasher is None:
            raise FleetKeyError(f"no usable fleet key at {config.fleet_key_path}")
        kiosk.engine.start()
        if wire:
            wait_until_connected(kiosk, DEVICE_CONNECT_TIMEOUT_S)
        today = kiosk.clock.now().date()
        travellers = population(seed, count, today)
        seed_reference_data(kiosk.store, reference_datasets(travellers, kiosk.hasher, today, policy))
        yield kiosk, stage, travellers


def wait_until_connected(kiosk: Kiosk, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        waiting = [d.name for d in kiosk.engine.devices.all() if d.health().state is not HealthState.OK]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise DeviceError(", ".join(waiting), "did not connect")
        time.sleep(0.02)


def _serve_all(
    kiosk: Kiosk, stage: Stage, travellers: list[SimulatedTraveller]
) -> list[tuple[SimulatedTraveller, TransactionOutcome | None]]:
    results = []
    for traveller in travellers:
        stage.arrive(traveller)
        try:
            outcome = kiosk.engine.run_once(IDLE_TIMEOUT_S)
        finally:
            stage.leave()
        results.append((traveller, outcome))
    return results


def run_population(
    config: Config, count: int, seed: int, db: Path | None = None, *, wire: bool = False
) -> dict[str, Any]:
    """Serve ``count`` simulated travellers; the summary of the headless-run contract."""
    with simulated_kiosk(config, count, seed, db, wire=wire) as (kiosk, stage, travellers):
        policy = kiosk.store.reference_data.policy_rules() or LANE_POLICY
        results = _serve_all(kiosk, stage, travellers)
        # Counted where the doors are: the simulated gate, or the relays of the wire rig.
        interlock = getattr(
            stage, "interlock_violations", getattr(kiosk.engine.devices.gate, "interlock_violations", 0)
        )
    decisions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    stages: dict[str, list[float]] = defaultdict(list)
    unexpected = 0
    left_open = 0
    for traveller, outcome in results:
        decision = outcome.decision if outcome else "NO_TRANSACTION"
        decisions[decision] += 1
        # Every traveller expects a decision: one not served (a lane that stayed closed) is unexpected.
        unexpected += decision != expected_decision(traveller, policy)
        if outcome is None:
            continue
        reasons.update(outcome.reasons)
        for stage, ms in outcome.stage_ms.items():
            stages[stage].append(ms)
        left_open += outcome.entry_left_unlocked
    return {
        "travellers": count,
        "decisions": dict(sorted(decisions.items())),
        "reasons": dict(sorted(reasons.items())),
        "stage_ms": {stage: percentiles(values) for stage, values in sorted(stages.items())},
        "gate_left_open": left_open,
        "interlock_violations": interlock,
        "unexpected_decisions": unexpected,
        "seed": seed,
    }


def bench(config: Config, count: int = 1000, seed: int = 1) -> dict[str, Any]:
    """Software latency per stage with zero device delay (wall-clock, not simulated, time)."""
    with simulated_kiosk(config, count, seed, None) as (kiosk, stage, travellers):
        timer = _WallTimer()
        kiosk.engine.subscribe(timer)
        started = time.perf_counter()
        _serve_all(kiosk, stage, travellers)
        elapsed = time.perf_counter() - started
    return {
        "travellers": count,
        "wall_s": round(elapsed, 3),
        "travellers_per_s": round(count / elapsed, 1),
        "stage_ms": {s: percentiles(timer.stages[s]) for s in DECISION_STAGES if timer.stages.get(s)},
        "to_decision_ms": percentiles(timer.to_decision),
    }
