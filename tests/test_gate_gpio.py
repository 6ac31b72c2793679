"""The gate's IO layer and lane rules on the GPIO backend, with gpiozero's MockFactory pins.

Inputs here are wired as contacts closing to ground with the internal pull-ups, so "active" is a
low level (every input is listed in ``active_low``). Lock pins are checked against the wiring
table directly, not through the code under test: entry relay energised = unlocked, exit relay
energised = locked.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config import Config
from config.load import describe
from drivers.door_controller import DoorController, InterlockError
from drivers.gate import build as build_any
from drivers.gate.gate_io import MAX_QUEUED_EVENTS, GateIO
from drivers.gate.gpio import GpioPort, build
from drivers.gate.options import GateOptions, GpioGateSection
from drivers.interfaces import DeviceError, HealthState, LaneEvent, Signal

# Anything here could hang on a bug (threads, ptys, waits): fail instead.
pytestmark = pytest.mark.timeout(30)

OUTPUT_PINS = {"entry_lock": 17, "exit_lock": 27, "lamp_green": 22, "lamp_red": 23, "buzzer": 24}
INPUT_PINS = {
    "entry_beam": 5,
    "exit_beam": 6,
    "entry_door_closed": 13,
    "exit_door_closed": 19,
    "lane_presence": 26,
    "tailgate": 20,
    "emergency_release": 21,
}


def gpio_options(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "outputs": dict(OUTPUT_PINS),
        "inputs": dict(INPUT_PINS),
        "active_low": list(INPUT_PINS),
        "forced_grace_s": 0.0,
        "reconcile_s": 0.0,
    }
    options.update(overrides)
    return options


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lane:
    """The physical side of the gate: sensors to drive, relay pins to look at."""

    def __init__(self, factory: MockFactory, gate: GateIO) -> None:
        self.factory = factory
        self.gate = gate

    def pin(self, pin: int) -> Any:
        return self.factory.pin(pin)

    def set(self, name: str, active: bool) -> None:
        pin = self.pin(INPUT_PINS[name])
        pin.drive_low() if active else pin.drive_high()

    def pulse(self, name: str, *, during: tuple[str, bool] | None = None) -> None:
        self.set(name, True)
        if during:
            self.set(*during)
        self.set(name, False)

    def entry_unlocked(self) -> bool:
        return bool(self.pin(OUTPUT_PINS["entry_lock"]).state)

    def exit_unlocked(self) -> bool:
        return not self.pin(OUTPUT_PINS["exit_lock"]).state

    def lamp(self, name: str) -> bool:
        return bool(self.pin(OUTPUT_PINS[name]).state)

    def events(self) -> list[LaneEvent]:
        found = []
        while (event := self.gate.wait_event(0)) is not None:
            found.append(event)
        return found


@contextmanager
def mock_gpio() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


@contextmanager
def gpio_lane(monotonic: FakeClock | None = None, **overrides: Any) -> Iterator[Lane]:
    """A started GPIO gate with both doors closed; a fake clock when given one."""
    with mock_gpio() as factory:
        if monotonic is None:
            gate = build(GpioGateSection(options=gpio_options(**overrides)))
        else:
            options = GateOptions.model_validate(
                {k: v for k, v in gpio_options(**overrides).items() if k != "reconcile_s"}
            )
            port = GpioPort(options.channel_map(), reconcile_s=0)
            gate = GateIO(port, forced_grace_s=options.forced_grace_s, monotonic=monotonic).start()
        lane = Lane(factory, gate)
        for contact in ("entry_door_closed", "exit_door_closed"):
            if contact in overrides.get("inputs", INPUT_PINS):
                lane.set(contact, True)
        try:
            yield lane
        finally:
            gate.close()


@pytest.fixture
def lane() -> Iterator[Lane]:
    with gpio_lane() as built:
        yield built


def enter(lane: Lane) -> None:
    lane.gate.set_exit_unlocked(False)
    lane.gate.set_entry_unlocked(True)
    lane.pulse("entry_beam", during=("lane_presence", True))


# --- start-up and outputs --------------------------------------------------------------------------


def test_build_starts_in_the_safe_state(lane: Lane) -> None:
    assert not lane.entry_unlocked() and lane.exit_unlocked()
    assert lane.lamp("lamp_red") and not lane.lamp("lamp_green") and not lane.lamp("buzzer")
    assert not lane.gate.entry_unlocked() and lane.gate.exit_unlocked()
    assert lane.gate.health().state is HealthState.OK
    assert lane.events() == []


@pytest.mark.parametrize(
    ("signal", "green", "red"),
    [
        (Signal.READY, True, False),
        (Signal.GO, True, False),
        (Signal.BUSY, False, True),
        (Signal.OFF, False, False),
    ],
)
def test_signals_drive_the_lamps(lane: Lane, signal: Signal, green: bool, red: bool) -> None:
    lane.gate.set_signal(signal)
    assert (lane.lamp("lamp_green"), lane.lamp("lamp_red")) == (green, red)


def test_active_low_relays_and_swapped_lock_semantics() -> None:
    overrides = {
        "active_low": [
            "entry_lock",
            "exit_lock",
            "lamp_red",
            *(name for name in INPUT_PINS if name != "entry_beam"),
        ],
        "entry_unlock_energised": False,  # entry on a maglock, exit on a strike
        "exit_unlock_energised": True,
    }
    with gpio_lane(**overrides) as lane:
        entry_pin, exit_pin = lane.pin(OUTPUT_PINS["entry_lock"]), lane.pin(OUTPUT_PINS["exit_lock"])
        # Safe state: entry locked = maglock energised = pin low; exit free = strike energised = pin low.
        assert (entry_pin.state, exit_pin.state) == (False, False)
        assert not lane.pin(OUTPUT_PINS["lamp_red"]).state  # active-low lamp lit
        lane.gate.set_exit_unlocked(False)
        lane.gate.set_entry_unlocked(True)
        assert (entry_pin.state, exit_pin.state) == (True, True)
        # entry_beam is wired active-high now: a high level is a broken beam.
        lane.pin(INPUT_PINS["lane_presence"]).drive_low()
        lane.pin(INPUT_PINS["entry_beam"]).drive_high()
        lane.pin(INPUT_PINS["entry_beam"]).drive_low()
        assert lane.events() == [LaneEvent.PERSON_ENTERED]


# --- lane rules --------------------------------------------------------------------------------------


def test_a_person_entering_through_the_unlocked_entry(lane: Lane) -> None:
    enter(lane)
    assert lane.events() == [LaneEvent.PERSON_ENTERED]
    assert lane.gate.lane_occupied()


def test_a_person_stepping_back_out_retreats(lane: Lane) -> None:
    enter(lane)
    lane.events()
    lane.set("entry_beam", True)
    lane.set("lane_presence", False)
    lane.set("entry_beam", False)
    assert lane.events() == [LaneEvent.PERSON_RETREATED]
    assert not lane.gate.lane_occupied()


def test_a_person_leaving_through_the_exit(lane: Lane) -> None:
    enter(lane)
    assert lane.events() == [LaneEvent.PERSON_ENTERED]
    lane.gate.set_entry_unlocked(False)
    lane.gate.set_exit_unlocked(True)
    lane.set("exit_beam", True)
    lane.set("lane_presence", False)
    lane.set("exit_beam", False)
    assert lane.events() == [LaneEvent.PERSON_EXITED]
    assert not lane.gate.lane_occupied()


def test_a_beam_pulse_at_a_locked_closed_door_is_ignored(lane: Lane) -> None:
    lane.gate.set_exit_unlocked(False)
    lane.pulse("entry_beam")
    lane.pulse("exit_beam")
    assert lane.events() == []
    assert not lane.gate.lane_occupied()


def test_a_person_standing_in_a_beam_counts_as_occupying_the_lane(lane: Lane) -> None:
    lane.set("exit_beam", True)
    assert lane.gate.lane_occupied()


def test_without_a_presence_sensor_crossings_alternate() -> None:
    inputs = {k: v for k, v in INPUT_PINS.items() if k != "lane_presence"}
    with gpio_lane(inputs=inputs, active_low=list(inputs)) as lane:
        lane.gate.set_exit_unlocked(False)
        lane.gate.set_entry_unlocked(True)
        lane.pulse("entry_beam")
        lane.pulse("entry_beam")
        assert lane.events() == [LaneEvent.PERSON_ENTERED, LaneEvent.PERSON_RETREATED]


def test_the_second_person_sensor_reports_tailgating_and_sounds_the_buzzer(lane: Lane) -> None:
    lane.set("tailgate", True)
    assert lane.events() == [LaneEvent.TAILGATING]
    assert lane.lamp("buzzer")
    lane.set("tailgate", False)
    assert not lane.lamp("buzzer")


def test_a_locked_door_opening_is_forced(lane: Lane) -> None:
    lane.gate.set_exit_unlocked(False)
    lane.set("exit_door_closed", False)
    assert lane.events() == [LaneEvent.DOOR_FORCED]
    assert lane.lamp("buzzer")
    lane.set("exit_door_closed", True)
    assert not lane.lamp("buzzer")


def test_an_unlocked_door_opening_is_not_forced(lane: Lane) -> None:
    lane.set("exit_door_closed", False)  # the exit is free in the safe state
    assert lane.events() == []


def test_a_door_pushed_just_as_it_locks_is_not_forced() -> None:
    clock = FakeClock()
    with gpio_lane(clock, forced_grace_s=1.0) as lane:
        lane.gate.set_exit_unlocked(False)
        clock.now += 0.5
        lane.set("exit_door_closed", False)
        lane.set("exit_door_closed", True)
        assert lane.events() == []
        clock.now += 1.0
        lane.set("exit_door_closed", False)
        assert lane.events() == [LaneEvent.DOOR_FORCED]


# --- emergency release and interlock -----------------------------------------------------------------


def test_emergency_release_frees_the_exit_at_once_and_locks_the_entry(lane: Lane) -> None:
    lane.gate.set_exit_unlocked(False)
    lane.gate.set_entry_unlocked(True)
    lane.set("emergency_release", True)
    # No engine involved: the IO layer reacted inside the input callback.
    assert lane.exit_unlocked() and not lane.entry_unlocked()
    assert lane.events() == [LaneEvent.EMERGENCY_RELEASE]
    assert lane.gate.health().state is HealthState.DEGRADED
    lane.gate.set_exit_unlocked(False)
    assert lane.exit_unlocked()
    with pytest.raises(DeviceError, match="emergency"):
        lane.gate.set_entry_unlocked(True)
    lane.set("emergency_release", False)
    assert lane.exit_unlocked()  # stays free until someone locks it
    lane.gate.set_exit_unlocked(False)
    assert not lane.exit_unlocked()
    assert lane.gate.health().state is HealthState.OK


def test_an_emergency_release_active_at_start_is_reported() -> None:
    with mock_gpio() as factory:
        # Held active (low) before the gate claims its pins: the pull-up must not hide it.
        pin = factory.pin(INPUT_PINS["emergency_release"])
        pin.drive_low()
        options = gpio_options(pull="off")
        gate = build(GpioGateSection(options=options))
        try:
            assert gate.wait_event(0) is LaneEvent.EMERGENCY_RELEASE
            assert gate.exit_unlocked() and not gate.entry_unlocked()
        finally:
            gate.close()


def test_unlocking_the_exit_locks_the_entry_first(lane: Lane) -> None:
    lane.gate.set_exit_unlocked(False)
    lane.gate.set_entry_unlocked(True)
    lane.gate.set_exit_unlocked(True)
    assert lane.exit_unlocked() and not lane.entry_unlocked()


def test_the_entry_never_unlocks_while_the_exit_is_unlocked(lane: Lane) -> None:
    with pytest.raises(DeviceError, match="interlock"):
        lane.gate.set_entry_unlocked(True)
    assert not lane.entry_unlocked()


def test_crossings_nobody_took_are_discarded_when_a_door_unlocks(lane: Lane) -> None:
    enter(lane)
    lane.set("tailgate", True)
    lane.gate.set_exit_unlocked(True)
    assert lane.events() == [LaneEvent.TAILGATING]


# --- waiting, reconciling, closing ---------------------------------------------------------------------


def test_wait_event_wakes_as_soon_as_an_event_arrives(lane: Lane) -> None:
    got: list[LaneEvent | None] = []
    waiter = threading.Thread(target=lambda: got.append(lane.gate.wait_event(10.0)))
    started = time.monotonic()
    waiter.start()
    lane.set("tailgate", True)
    waiter.join(9.0)
    assert got == [LaneEvent.TAILGATING]
    assert time.monotonic() - started < 9.0  # woken by the event, not by the waiter's 10 s budget


def test_wait_event_times_out_with_none(lane: Lane) -> None:
    started = time.monotonic()
    assert lane.gate.wait_event(0.05) is None
    assert time.monotonic() - started > 0.04


def test_the_reconcile_poll_catches_an_edge_the_debouncer_swallowed() -> None:
    with gpio_lane(reconcile_s=0.02) as lane:
        pin = lane.pin(INPUT_PINS["tailgate"])
        pin.edges = "none"  # the edge interrupt is lost; only the level changes
        pin.drive_low()
        assert lane.gate.wait_event(2.0) is LaneEvent.TAILGATING


def test_a_flood_of_unread_events_is_bounded_and_counted(lane: Lane) -> None:
    for _ in range(MAX_QUEUED_EVENTS + 6):
        lane.pulse("tailgate")
    assert len(lane.events()) == MAX_QUEUED_EVENTS
    assert lane.gate.events_dropped == 6


def test_the_package_builds_the_configured_backend() -> None:
    with mock_gpio():
        gate = build_any(GpioGateSection(options=gpio_options()))
        try:
            assert isinstance(gate.port, GpioPort)
        finally:
            gate.close()


def test_a_closed_gate_refuses_work(lane: Lane) -> None:
    lane.gate.close()
    assert lane.gate.health().state is HealthState.FAILED
    with pytest.raises(DeviceError):
        lane.gate.set_signal(Signal.GO)
    with pytest.raises(DeviceError):
        lane.gate.wait_event(0.01)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"outputs": {"entry_lock": 17}}, "required channel"),
        (gpio_options(outputs={**OUTPUT_PINS, "buzzer": 5}), "two channels"),
        (gpio_options(inputs={**INPUT_PINS, "smoke": 3}), "inputs.smoke"),
        (gpio_options(active_low=["horn"]), "active_low"),
        (gpio_options(bounce_ms=3), "bounce_ms"),
    ],
)
def test_bad_options_stop_with_the_key_named(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Config.model_validate({"devices": {"gate": {"backend": "gpio", "options": options}}})
    message = describe(caught.value)
    assert "key 'devices.gate.options" in message and problem in message


# --- invariants under random input --------------------------------------------------------------------

ACTIONS = st.one_of(
    st.tuples(st.just("input"), st.sampled_from(sorted(INPUT_PINS)), st.booleans()),
    st.tuples(
        st.just("door"),
        st.sampled_from(["open_entry", "close_entry", "open_exit", "close_exit", "secure", "fail_safe"]),
        st.just(True),
    ),
    # Raw gate commands too: the IO layer must hold the line even without the door controller.
    st.tuples(st.just("gate"), st.sampled_from(["set_entry_unlocked", "set_exit_unlocked"]), st.booleans()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, max_size=40))
def test_random_inputs_and_commands_never_unlock_both_doors_or_trap_an_emergency(
    steps: list[tuple[str, str, bool]],
) -> None:
    with gpio_lane() as lane:
        doors = DoorController(lane.gate)
        for kind, name, value in steps:
            if kind == "input":
                lane.set(name, value)
            else:
                # Refusing is fine; what the pins do is what matters.
                with contextlib.suppress(DeviceError, InterlockError):
                    getattr(doors, name)() if kind == "door" else getattr(lane.gate, name)(value)
            assert not (lane.entry_unlocked() and lane.exit_unlocked())
            if not lane.pin(INPUT_PINS["emergency_release"]).state:
                assert lane.exit_unlocked() and not lane.entry_unlocked()
