"""The door controller: interlock, safe states, door supervision and alarms.

Most tests run on the real GPIO gate stack (gpiozero MockFactory pins) with a fake clock shared by
the gate and the controller, so timeouts cost nothing and no thread is involved.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.backoff import Backoff
from common.clock import SimulatedClock
from drivers.door_controller import AlarmKind, DoorAlarm, DoorController, DoorTimings, InterlockError
from drivers.gate.channels import Door
from drivers.gate.modbus_io import build as build_modbus
from drivers.gate.modbus_simulator import ModbusIoSimulator
from drivers.gate.options import ModbusGateSection
from drivers.interfaces import DeviceError, HealthState, LaneEvent, Signal
from drivers.simulated.lane import SimulatedGate, SimulatedLane
from tests.test_gate_gpio import FakeClock, Lane, gpio_lane

# Anything here could hang on a bug (threads, ptys, waits): fail instead.
pytestmark = pytest.mark.timeout(30)

TIMINGS = DoorTimings(entry_unlocked_max_s=30.0, exit_unlocked_max_s=60.0, door_open_max_s=20.0, slice_s=0.01)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lane(clock: FakeClock) -> Iterator[Lane]:
    with gpio_lane(clock) as built:
        yield built


@pytest.fixture
def doors(lane: Lane, clock: FakeClock) -> DoorController:
    return DoorController(lane.gate, TIMINGS, monotonic=clock)


def kinds(doors: DoorController) -> list[tuple[AlarmKind, Door | None]]:
    return [(alarm.kind, alarm.door) for alarm in doors.take_alarms()]


# --- interlock and safe states ---------------------------------------------------------------------


def test_opening_the_entry_locks_the_exit_first(lane: Lane, doors: DoorController) -> None:
    assert lane.exit_unlocked()  # the safe state after start-up
    doors.open_entry()
    assert lane.entry_unlocked() and not lane.exit_unlocked()
    doors.open_exit()
    assert lane.exit_unlocked() and not lane.entry_unlocked()


def test_an_exit_that_will_not_lock_keeps_the_entry_shut(lane: Lane, doors: DoorController) -> None:
    lane.set("emergency_release", True)  # the IO layer holds the exit free
    with pytest.raises(InterlockError, match="exit door did not confirm locked"):
        doors.open_entry()
    assert not lane.entry_unlocked() and lane.exit_unlocked()


def test_secure_frees_the_exit_only_for_someone_inside(lane: Lane, doors: DoorController) -> None:
    doors.open_entry()
    assert doors.secure()
    assert not lane.entry_unlocked() and not lane.exit_unlocked()
    assert lane.lamp("lamp_green") and not lane.lamp("lamp_red")
    lane.set("lane_presence", True)
    assert doors.secure()
    assert not lane.entry_unlocked() and lane.exit_unlocked()
    assert lane.lamp("lamp_red")


def test_fail_safe_locks_the_entry_and_frees_the_exit(lane: Lane, doors: DoorController) -> None:
    doors.open_entry()
    assert doors.fail_safe()
    assert not lane.entry_unlocked() and lane.exit_unlocked()
    assert lane.lamp("lamp_red") and not lane.lamp("lamp_green")


# --- supervision -------------------------------------------------------------------------------------


def test_a_door_held_unlocked_alarms_once_and_relocks_when_the_lane_is_empty(
    lane: Lane, doors: DoorController, clock: FakeClock
) -> None:
    doors.open_entry()
    lane.set("lane_presence", True)
    doors.supervise()
    clock.now += 31
    doors.supervise()
    doors.supervise()
    assert kinds(doors) == [(AlarmKind.DOOR_HELD_UNLOCKED, Door.ENTRY)]
    assert lane.entry_unlocked()  # someone is inside: locking them in is worse
    lane.set("lane_presence", False)
    doors.supervise()
    assert not lane.entry_unlocked()
    assert kinds(doors) == []


def test_a_door_unlocked_within_its_limit_raises_nothing(
    lane: Lane, doors: DoorController, clock: FakeClock
) -> None:
    doors.open_exit()
    doors.supervise()
    clock.now += 59
    doors.supervise()
    assert lane.exit_unlocked()
    assert kinds(doors) == []


def test_a_door_standing_open_alarms_once_per_episode(
    lane: Lane, doors: DoorController, clock: FakeClock
) -> None:
    lane.set("exit_door_closed", False)  # the exit is free: open, not forced
    for _ in range(2):
        doors.supervise()
        clock.now += 21
        doors.supervise()
        doors.supervise()
        assert kinds(doors) == [(AlarmKind.DOOR_HELD_OPEN, Door.EXIT)]
        lane.set("exit_door_closed", True)
        doors.supervise()
        lane.set("exit_door_closed", False)


@pytest.mark.parametrize(
    ("sensor", "event", "alarm"),
    [
        ("tailgate", LaneEvent.TAILGATING, AlarmKind.TAILGATING),
        ("entry_door_closed", LaneEvent.DOOR_FORCED, AlarmKind.DOOR_FORCED),
    ],
)
def test_lane_incidents_come_through_wait_event_as_alarms(
    lane: Lane, doors: DoorController, clock: FakeClock, sensor: str, event: LaneEvent, alarm: AlarmKind
) -> None:
    clock.now += 5  # well past the forced-door grace since start-up locked the entry
    lane.set(sensor, sensor == "tailgate")  # the tailgate sensor triggers; the entry door opens
    assert doors.wait_event(1.0) is event
    assert kinds(doors) == [(alarm, None)]


def test_an_emergency_release_puts_the_lane_in_its_fail_safe_state(lane: Lane, doors: DoorController) -> None:
    doors.open_entry()
    lane.gate.set_signal(Signal.GO)
    lane.set("emergency_release", True)
    assert doors.wait_event(1.0) is LaneEvent.EMERGENCY_RELEASE
    assert kinds(doors) == [(AlarmKind.EMERGENCY_RELEASE, None)]
    assert lane.exit_unlocked() and not lane.entry_unlocked()
    assert lane.lamp("lamp_red") and not lane.lamp("lamp_green")


def test_wait_event_returns_none_when_its_budget_is_spent(doors: DoorController) -> None:
    started = time.monotonic()
    assert doors.wait_event(0.1) is None
    assert time.monotonic() - started > 0.08  # it spent its budget (an upper bound would only measure load)


def test_observers_get_every_alarm_and_a_broken_one_harms_nothing(lane: Lane, doors: DoorController) -> None:
    seen: list[DoorAlarm] = []

    def broken(_alarm: DoorAlarm) -> None:
        raise RuntimeError("observer bug")

    doors.subscribe(broken)
    doors.subscribe(seen.append)
    lane.set("tailgate", True)
    assert doors.wait_event(1.0) is LaneEvent.TAILGATING
    assert [alarm.kind for alarm in seen] == [AlarmKind.TAILGATING]


# --- loss of communication ----------------------------------------------------------------------------


def test_lost_communication_alarms_and_the_safe_state_follows_recovery() -> None:
    sim_clock = SimulatedClock()
    gate = SimulatedGate(SimulatedLane(sim_clock))
    fake = FakeClock()
    doors = DoorController(gate, TIMINGS, monotonic=fake, backoff=Backoff(1.0, 10.0, rng=random.Random(7)))
    doors.open_entry()
    gate.fail("bus silent")
    doors.supervise()
    assert kinds(doors) == [(AlarmKind.COMMUNICATION_LOST, None)]
    assert doors.health().state is HealthState.FAILED
    gate.repair()
    doors.supervise()  # the next attempt waits for its backoff
    assert doors.health().state is HealthState.DEGRADED
    assert gate.entry_unlocked()
    fake.now += 10
    doors.supervise()
    assert kinds(doors) == [(AlarmKind.COMMUNICATION_RESTORED, None)]
    assert not gate.entry_unlocked() and gate.exit_unlocked() and gate.signal is Signal.STOP
    assert doors.health().state is HealthState.OK


def supervise_until(doors: DoorController, kind: AlarmKind, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while kind not in [alarm.kind for alarm in doors.take_alarms()]:
        assert time.monotonic() < deadline, f"no {kind} alarm"
        doors.supervise()
        time.sleep(0.01)


def test_an_unplugged_modbus_module_is_seen_lost_and_restored(tmp_path: Path) -> None:
    sim = ModbusIoSimulator(tmp_path / "io").start()
    options = {"poll_interval_s": 0.02, "response_timeout_s": 0.1, "reconnect_max_s": 0.2}
    gate = build_modbus(ModbusGateSection(port=sim.path, options=options))
    doors = DoorController(gate, DoorTimings(slice_s=0.01), backoff=Backoff(0.05, 0.2))
    try:
        doors.open_entry()
        sim.unplug()
        supervise_until(doors, AlarmKind.COMMUNICATION_LOST)
        with pytest.raises(DeviceError, match="no link"):
            doors.wait_event(1.0)
        sim.replug()
        supervise_until(doors, AlarmKind.COMMUNICATION_RESTORED)
        assert not sim.coil("entry_lock") and not sim.coil("exit_lock")  # entry locked, exit free
        assert doors.health().state is HealthState.OK
    finally:
        gate.close()
        sim.close()
