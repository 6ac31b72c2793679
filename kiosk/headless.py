"""Headless runs: a simulated population through the real engine, for operators, CI and benches."""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk.app import Kiosk, build_kiosk
from kiosk.config import Config
from kiosk.flow.engine import FlowEvent, TransactionOutcome
from kiosk.flow.states import State
from kiosk.simulation.population import SimulatedTraveller, population, reference_datasets
from kiosk.store import canonical_sha256

IDLE_TIMEOUT_S = 1.0
# Stages the software runs without waiting for a person; what the bench measures.
DECISION_STAGES = (
    "document_read",
    "document_checks",
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


def _prepare(
    config: Config, count: int, seed: int, db: Path | None
) -> tuple[Kiosk, list[SimulatedTraveller]]:
    kiosk = build_kiosk(config, store_path=db)
    kiosk.engine.start()
    today = kiosk.clock.now().date()
    travellers = population(seed, count, today)
    for name, records in reference_datasets(travellers, kiosk.hasher, today).items():
        # A version names its content: the same population on another day is another version.
        kiosk.store.apply_dataset(name, f"sim-{canonical_sha256(records)[:16]}", records)
    return kiosk, travellers


def _serve_all(kiosk: Kiosk, travellers: list[SimulatedTraveller]) -> list[tuple[SimulatedTraveller, Any]]:
    assert kiosk.lane is not None
    results = []
    for traveller in travellers:
        kiosk.lane.arrive(traveller)
        outcome: TransactionOutcome | None = kiosk.engine.run_once(IDLE_TIMEOUT_S)
        kiosk.lane.leave()
        results.append((traveller, outcome))
    return results


def run_population(config: Config, count: int, seed: int, db: Path | None = None) -> dict[str, Any]:
    """Serve ``count`` simulated travellers; the summary of the headless-run contract."""
    kiosk, travellers = _prepare(config, count, seed, db)
    try:
        results = _serve_all(kiosk, travellers)
        gate = kiosk.engine.devices.gate
        interlock = getattr(gate, "interlock_violations", 0)
    finally:
        kiosk.close()
    decisions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    stages: dict[str, list[float]] = defaultdict(list)
    unexpected = 0
    left_open = 0
    for traveller, outcome in results:
        decision = outcome.decision if outcome else "NO_TRANSACTION"
        decisions[decision] += 1
        if outcome is None:
            continue
        reasons.update(outcome.reasons)
        for stage, ms in outcome.stage_ms.items():
            stages[stage].append(ms)
        unexpected += decision != traveller.expected
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
    kiosk, travellers = _prepare(config, count, seed, None)
    timer = _WallTimer()
    kiosk.engine.subscribe(timer)
    started = time.perf_counter()
    try:
        _serve_all(kiosk, travellers)
    finally:
        kiosk.close()
    elapsed = time.perf_counter() - started
    return {
        "travellers": count,
        "wall_s": round(elapsed, 3),
        "travellers_per_s": round(count / elapsed, 1),
        "stage_ms": {s: percentiles(timer.stages[s]) for s in DECISION_STAGES if timer.stages.get(s)},
        "to_decision_ms": percentiles(timer.to_decision),
    }
