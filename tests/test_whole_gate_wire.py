"""The whole gate over the wire: every serial device on its protocol simulator behind a pty."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from kiosk.flow.engine import FlowEvent
from kiosk.flow.states import State
from kiosk.headless import run_population, simulated_kiosk
from kiosk.simulation.population import traveller_of
from kiosk.simulation.wire import WireRig

pytestmark = pytest.mark.timeout(120)


@pytest.mark.soak
def test_population_through_the_real_drivers(sim_config):
    summary = run_population(sim_config, 40, seed=21, wire=True)
    assert summary["unexpected_decisions"] == 0
    assert summary["gate_left_open"] == 0 and summary["interlock_violations"] == 0
    assert {"OPEN", "REFER", "ABANDONED"} <= set(summary["decisions"])
    # The fingerprint and the doors really ran: their stages were timed over the ptys.
    assert {"fingerprint", "entry_open", "passage", "exit_open"} <= set(summary["stage_ms"])


def serve(kiosk, rig, traveller):
    rig.arrive(traveller)
    try:
        return kiosk.engine.run_once(2.0)
    finally:
        rig.leave()


def test_fingerprint_sensor_unplugged_mid_transaction_fails_safe_then_reconnects(sim_config):
    with ExitStack() as stack:
        kiosk, rig, _ = stack.enter_context(simulated_kiosk(sim_config, 1, 1, None, wire=True))
        assert isinstance(rig, WireRig)
        today = kiosk.clock.now().date()
        first = traveller_of("citizen", seed=31, today=today)
        second = traveller_of("citizen", seed=32, today=today)
        unplugged: list[FlowEvent] = []

        def unplug_at_fingerprint(event: FlowEvent) -> None:
            if event.kind == "state" and event.state is State.FINGERPRINT and not unplugged:
                unplugged.append(event)
                rig.sensor_endpoint.unplug()

        kiosk.engine.subscribe(unplug_at_fingerprint)
        outcome = serve(kiosk, rig, first)
        assert outcome.decision == "REFER" and outcome.reasons == ("DEVICE_FAILURE",)
        assert kiosk.engine.state is State.OUT_OF_SERVICE
        gate = kiosk.engine.devices.gate
        assert not gate.entry_unlocked() and gate.exit_unlocked()
        alerts = [
            json.loads(e.payload)["alert"] for e in kiosk.store.outbox.pending(200) if e.type == "alert"
        ]
        assert "out_of_service" in alerts

        rig.sensor_endpoint.replug()  # plugged back in: same link path, a new pty, a power-cycled module
        deadline = kiosk.clock.monotonic() + 10
        result = None
        while kiosk.clock.monotonic() < deadline:
            result = serve(kiosk, rig, second)
            if result.decision != "OUT_OF_SERVICE":
                break
        assert result is not None and result.decision == "OPEN"
        assert not gate.entry_unlocked()
