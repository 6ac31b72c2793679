"""The lane's run loop, headless: the real engine on in-process simulated devices and a real store.

Nothing here sleeps: each test waits on a condition with a generous deadline, and a round trip
through the loop's own thread (``in_engine``) proves the loop has turned.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.interfaces import HealthState
from kiosk.app import Kiosk
from kiosk.flow.engine import TransactionOutcome
from kiosk.flow.runner import LaneRunner
from kiosk.flow.states import State
from kiosk.simulation.world import Breakable, SimulatedWorld
from kiosk.store.requests import Request

DEADLINE_S = 30.0


def wait_until(predicate: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    done = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        done.wait(0.01)


class Served:
    """A started runner with a simulated world; outcomes collected as the loop reports them."""

    def __init__(self, kiosk: Kiosk) -> None:
        devices = [d for d in kiosk.engine.devices.all() if isinstance(d, Breakable)]
        self.world = SimulatedWorld(kiosk.lane, devices, kiosk.store, kiosk.hasher, seed=5)
        self.outcomes: list[TransactionOutcome] = []
        self.runner = LaneRunner(
            kiosk.engine, after_transaction=self._after, retry_s=0.05, health_recheck_s=0.05
        )
        self.kiosk = kiosk

    def _after(self, outcome: TransactionOutcome) -> None:
        self.outcomes.append(outcome)
        self.world.leave()

    def turned(self) -> None:
        """Two round trips through the loop's thread: it has been round at least once in between."""
        for _ in range(2):
            self.runner.in_engine(lambda: None).result(DEADLINE_S)

    def serve(self, archetype: str = "citizen") -> TransactionOutcome:
        before = len(self.outcomes)
        self.world.arrive(archetype)
        wait_until(lambda: len(self.outcomes) > before, f"{archetype} served")
        return self.outcomes[before]


@pytest.fixture
def served(kiosk: Kiosk) -> Iterator[Served]:
    lane = Served(kiosk)
    lane.runner.start()
    yield lane
    lane.runner.stop()


def test_serves_travellers_one_after_another(served: Served) -> None:
    assert served.serve("citizen").decision == "OPEN"
    assert served.serve("impostor").decision == "REFER"
    assert served.serve("citizen").decision == "OPEN"
    frame = served.runner.preview.take()  # the preview saw the last face, and gives it up once
    assert frame is not None and served.runner.preview.take() is None


def test_paused_lane_serves_nobody_until_resumed(served: Served) -> None:
    served.runner.pause()
    served.turned()
    served.world.arrive("citizen")
    served.turned()
    assert served.outcomes == [] and served.kiosk.store.transactions.recent(10) == []
    served.runner.resume_when_healthy().result(DEADLINE_S)
    wait_until(lambda: served.outcomes, "served after resuming")
    assert served.outcomes[0].decision == "OPEN"


def test_reopening_waits_for_every_device_and_a_new_pause_cancels_it(served: Served) -> None:
    runner = served.runner
    runner.pause()
    served.world.break_device("camera", "lens covered")
    reopening = runner.resume_when_healthy()
    served.turned()
    assert not reopening.done() and runner.paused
    runner.pause()  # staff went back in
    assert reopening.cancelled()
    reopening = runner.resume_when_healthy()
    served.world.repair_all()
    reopening.result(DEADLINE_S)
    assert not runner.paused
    assert served.serve().decision == "OPEN"


def test_device_fault_closes_the_lane_and_it_reopens_once_repaired(served: Served) -> None:
    engine = served.kiosk.engine
    served.world.break_device("document_reader", "unplugged")
    wait_until(lambda: engine.state is State.OUT_OF_SERVICE, "out of service")
    assert engine.out_of_service_reason == "document_reader: unplugged"
    served.turned()  # the loop goes on looking at the closed lane's devices
    served.world.repair_all()
    wait_until(lambda: engine.state is State.IDLE, "back in service")
    assert served.serve().decision == "OPEN"


def test_a_failed_turn_is_survived(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    # Queued past the agent's validation, a hub request the engine cannot act on makes every turn
    # raise until it is withdrawn: the loop logs it and goes on.
    store = served.kiosk.store
    with sqlite3.connect(store.path) as db:  # what an older agent without the check could have queued
        db.execute(
            "INSERT INTO remote_requests (command_id, name, args, requested_at) VALUES (?, ?, ?, ?)",
            ("bad-1", "open_exit_door", json.dumps({"hold_s": "not a number"}), "2026-12-04T00:00:00Z"),
        )
    served.turned()
    assert "engine turn failed" in caplog.text
    store.requests.finish("bad-1", "withdrawn by the test")
    assert served.serve().decision == "OPEN"


@pytest.mark.parametrize(("command", "code"), [("reload_config", 75), ("reboot", 76)])
def test_hub_restart_request_ends_the_loop_with_its_exit_code(kiosk: Kiosk, command: str, code: int) -> None:
    lane = Served(kiosk)
    told: list[int] = []
    lane.runner.on_exit(told.append)
    lane.runner.start()
    try:
        assert lane.serve().decision == "OPEN"
        kiosk.store.requests.post(Request("c-1", command, {}))
        assert lane.runner.stopped.wait(DEADLINE_S)
        assert lane.runner.exit_code == code and told == [code]
        assert not lane.runner.running
        assert kiosk.store.requests.open() == []
    finally:
        lane.runner.stop()


def test_training_toggle_applies_to_the_next_transaction(served: Served) -> None:
    store = served.kiosk.store
    served.runner.set_training(True).result(DEADLINE_S)
    trained = served.serve()
    served.runner.set_training(False).result(DEADLINE_S)
    real = served.serve()
    assert store.transactions.get(trained.transaction_id)["training"] is True
    assert store.transactions.get(real.transaction_id)["training"] is False


def test_self_test_rehearses_a_passage_as_training(served: Served) -> None:
    runner, store = served.runner, served.kiosk.store
    runner.pause()
    assert runner.self_test(served.world.rehearsal).result(DEADLINE_S) is None
    rows = store.transactions.recent(10)
    assert len(rows) == 1 and rows[0]["decision"] == "OPEN" and rows[0]["training"] is True
    assert served.kiosk.engine.training is False
    served.world.break_device("gate", "jammed")
    assert runner.self_test().result(DEADLINE_S) == "gate: jammed"


def test_feedback_and_help_are_recorded_through_the_engine(served: Served) -> None:
    outcome = served.serve()
    served.runner.record_feedback(outcome.transaction_id, {"rating": 4}).result(DEADLINE_S)
    served.runner.request_help().result(DEADLINE_S)
    events = {e.type: json.loads(e.payload) for e in served.kiosk.store.outbox.pending(1000)}
    assert events["feedback"] == {"transaction_id": outcome.transaction_id, "rating": 4}
    assert events["help"]["transaction_id"] is None


def test_device_health_and_stop(kiosk: Kiosk) -> None:
    lane = Served(kiosk)
    lane.runner.start()
    health = lane.runner.device_health().result(DEADLINE_S)
    assert set(health) == {"document_reader", "chip", "camera", "fingerprint", "gate"}
    assert all(h.state is HealthState.OK for h in health.values())
    lane.runner.stop()
    assert lane.runner.stopped.is_set() and not lane.runner.running
    assert lane.runner.in_engine(lambda: None).cancelled()  # nothing runs after a stop
    assert lane.runner.in_background(lambda: None).cancelled()
