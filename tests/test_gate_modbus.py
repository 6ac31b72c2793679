"""The Modbus RTU gate backend against the slave simulator over a real pty.

The simulator keeps its coils across unplug/replug, like a module whose USB-RS485 adapter went
away. Inputs in the default layout are active-high (a 1 bit means the condition). Coils: entry
lock energised = unlocked, exit lock energised = locked (the default lock semantics).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadCoilsResponse

from drivers.gate.channels import Output
from drivers.gate.gate_io import GateIO
from drivers.gate.modbus_io import build
from drivers.gate.modbus_rtu import RtuStreamParser, build_frame
from drivers.gate.modbus_simulator import ModbusIoSimulator
from drivers.gate.options import ModbusGateSection
from drivers.interfaces import DeviceError, HealthState, LaneEvent, Signal

# Anything here could hang on a bug (threads, ptys, waits): fail instead.
pytestmark = pytest.mark.timeout(30)

POLL_S = 0.02
TIMEOUT_S = 0.25
FAILURES = 3
FAST = {
    "poll_interval_s": POLL_S,
    "response_timeout_s": TIMEOUT_S,
    "failures_to_fail": FAILURES,
    "coil_check_every": 5,
    "reconnect_initial_s": 0.05,
    "reconnect_max_s": 0.2,
}
# Loss of communication must show within the configured failures, each at most a reply timeout
# plus a poll period; the rest is slack for a loaded test machine.
LOSS_DETECTED_WITHIN_S = FAILURES * (TIMEOUT_S + POLL_S) + 1.0
ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition: Callable[[], Any], timeout_s: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.005)
    raise AssertionError("condition not met in time")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ModbusIoSimulator]:
    simulator = ModbusIoSimulator(tmp_path / "gate-io").start()
    simulator.set_input("entry_door_closed", True)
    simulator.set_input("exit_door_closed", True)
    yield simulator
    simulator.close()


@pytest.fixture
def gate(sim: ModbusIoSimulator) -> Iterator[GateIO]:
    built = build(ModbusGateSection(port=sim.path, baudrate=19200, options=FAST))
    # On a loaded machine the first contact can miss its reply timeout; the poll thread retries.
    wait_for(lambda: built.health().state is HealthState.OK)
    yield built
    built.close()


def entry_coil_unlocked(sim: ModbusIoSimulator) -> bool:
    return sim.coil("entry_lock")


def exit_coil_unlocked(sim: ModbusIoSimulator) -> bool:
    return not sim.coil("exit_lock")


# --- commands and read-back ----------------------------------------------------------------------


def test_build_talks_to_the_module_and_applies_the_safe_state(sim: ModbusIoSimulator, gate: GateIO) -> None:
    assert gate.health().state is HealthState.OK
    assert not entry_coil_unlocked(sim) and exit_coil_unlocked(sim)
    assert sim.coil("lamp_red") and not sim.coil("lamp_green")
    assert not gate.entry_unlocked() and gate.exit_unlocked()


def test_coil_writes_are_confirmed_by_read_back(sim: ModbusIoSimulator, gate: GateIO) -> None:
    gate.set_exit_unlocked(False)
    gate.set_entry_unlocked(True)
    assert entry_coil_unlocked(sim) and not exit_coil_unlocked(sim)
    assert gate.entry_unlocked() and not gate.exit_unlocked()
    gate.set_signal(Signal.GO)
    assert sim.coil("lamp_green") and not sim.coil("lamp_red")


def test_a_coil_that_does_not_take_the_write_is_an_error(sim: ModbusIoSimulator, gate: GateIO) -> None:
    gate.set_exit_unlocked(False)
    sim.jam_coil("entry_lock", False)
    with pytest.raises(DeviceError, match="reads back"):
        gate.set_entry_unlocked(True)
    assert not gate.entry_unlocked()


def test_a_module_that_rebooted_gets_its_coils_rewritten(sim: ModbusIoSimulator, gate: GateIO) -> None:
    gate.set_exit_unlocked(False)
    sim.power_cycle()  # every relay drops: the exit would be free
    # Found by the periodic coil check, rewritten, then confirmed by read-back.
    wait_for(lambda: sim.coil("exit_lock") and not gate.exit_unlocked())


def test_a_module_at_another_address_is_an_exception_not_a_crash(sim: ModbusIoSimulator) -> None:
    options = {**FAST, "outputs": {"entry_lock": 0, "exit_lock": 40}}
    gate = build(ModbusGateSection(port=sim.path, options=options))
    try:
        assert gate.health().state is not HealthState.OK
        wait_for(lambda: gate.health().state is HealthState.FAILED)
        assert "exception code 2" in gate.health().reason
    finally:
        gate.close()


# --- inputs to events ---------------------------------------------------------------------------------


def test_polled_inputs_become_lane_events(sim: ModbusIoSimulator, gate: GateIO) -> None:
    gate.set_exit_unlocked(False)
    gate.set_entry_unlocked(True)
    sim.set_input("entry_beam", True)
    time.sleep(4 * POLL_S)
    sim.set_input("lane_presence", True)
    sim.set_input("entry_beam", False)
    assert gate.wait_event(2.0) is LaneEvent.PERSON_ENTERED
    assert gate.lane_occupied()


def test_emergency_release_over_modbus_frees_the_exit(sim: ModbusIoSimulator, gate: GateIO) -> None:
    gate.set_exit_unlocked(False)
    gate.set_entry_unlocked(True)
    sim.set_input("emergency_release", True)
    assert gate.wait_event(2.0) is LaneEvent.EMERGENCY_RELEASE
    assert exit_coil_unlocked(sim) and not entry_coil_unlocked(sim)


def test_coil_callbacks_let_a_simulated_traveller_walk_in(sim: ModbusIoSimulator, gate: GateIO) -> None:
    def traveller(address: int, on: bool) -> None:
        if address == 0 and on:  # the entry relay unlocked the door
            threading.Timer(0.05, walk_in).start()

    def walk_in() -> None:
        sim.set_input("entry_beam", True)
        time.sleep(0.1)
        sim.set_input("lane_presence", True)
        sim.set_input("entry_beam", False)

    sim.on_coil_change(traveller)
    gate.set_exit_unlocked(False)
    gate.set_entry_unlocked(True)
    assert gate.wait_event(3.0) is LaneEvent.PERSON_ENTERED


# --- loss of communication -------------------------------------------------------------------------------


def test_unplugged_module_fails_fast_and_recovers_into_the_safe_state(
    sim: ModbusIoSimulator, gate: GateIO
) -> None:
    gate.set_exit_unlocked(False)
    gate.set_entry_unlocked(True)
    unplugged = time.monotonic()
    sim.unplug()
    wait_for(lambda: gate.health().state is HealthState.FAILED, LOSS_DETECTED_WITHIN_S)
    assert time.monotonic() - unplugged < LOSS_DETECTED_WITHIN_S
    started = time.monotonic()
    for call in (lambda: gate.set_entry_unlocked(False), gate.entry_unlocked, gate.lane_occupied):
        with pytest.raises(DeviceError):
            call()
    with pytest.raises(DeviceError):
        gate.wait_event(5.0)
    assert time.monotonic() - started < 0.5  # refusing costs no bus timeouts
    assert entry_coil_unlocked(sim)  # the module keeps its relays: it must have its own watchdog

    sim.replug()
    wait_for(lambda: gate.health().state is HealthState.OK, 5.0)
    assert not entry_coil_unlocked(sim) and exit_coil_unlocked(sim)
    assert sim.coil("lamp_red")
    assert gate.port.restores == 2  # first contact, then the recovery
    gate.set_signal(Signal.READY)
    assert sim.coil("lamp_green")


def test_unplugging_wakes_a_waiting_engine_with_an_error(sim: ModbusIoSimulator, gate: GateIO) -> None:
    outcome: list[BaseException | LaneEvent | None] = []

    def wait() -> None:
        try:
            outcome.append(gate.wait_event(20.0))
        except DeviceError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    sim.unplug()
    waiter.join(LOSS_DETECTED_WITHIN_S + 1.0)
    assert not waiter.is_alive()
    assert isinstance(outcome[0], DeviceError)


def test_a_module_slower_than_the_reply_timeout_is_lost_without_hanging(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow = ModbusIoSimulator(tmp_path / "slow-io", response_delay_s=TIMEOUT_S * 1.5).start()
    try:
        started = time.monotonic()
        gate = build(ModbusGateSection(port=slow.path, options=FAST))
        try:
            assert time.monotonic() - started < 2 * TIMEOUT_S + 0.5
            wait_for(lambda: gate.health().state is HealthState.FAILED, LOSS_DETECTED_WITHIN_S)
            # Late replies to earlier requests must never be taken for answers to later ones: no
            # recovery on stale answers, and no poll cycle that choked on an answer of the wrong shape.
            assert gate.port.restores == 0
            assert "poll cycle failed" not in caplog.text
        finally:
            gate.close()
    finally:
        slow.close()


def test_a_silent_module_on_a_live_bus_fails_and_recovers(sim: ModbusIoSimulator, gate: GateIO) -> None:
    sim.mute()
    wait_for(lambda: gate.health().state is HealthState.FAILED, LOSS_DETECTED_WITHIN_S)
    polls = sim.requests
    time.sleep(0.3)
    # Backoff: while lost it does not hammer the bus at the poll rate.
    assert sim.requests - polls < 0.3 / POLL_S
    sim.mute(False)
    wait_for(lambda: gate.health().state is HealthState.OK, 5.0)


def test_a_corrupted_reply_is_counted_and_the_next_poll_is_fine(sim: ModbusIoSimulator, gate: GateIO) -> None:
    failures, bad = gate.port.failures, gate.port.bad_frames
    sim.corrupt_next_reply()
    wait_for(lambda: gate.port.failures > failures)
    assert gate.port.bad_frames == bad + 1
    assert gate.health().usable
    transactions = gate.port.transactions
    wait_for(lambda: gate.port.transactions > transactions + 2)
    assert gate.health().state is HealthState.OK
    sim.set_input("tailgate", True)
    assert gate.wait_event(2.0) is LaneEvent.TAILGATING


# --- the simulator on its own ------------------------------------------------------------------------------


def test_the_simulator_skips_garbage_and_answers_the_next_request(sim: ModbusIoSimulator) -> None:
    request = build_frame(ReadCoilsRequest(address=0, count=8), 1)
    with serial.serial_for_url(sim.path, timeout=0.5) as port:
        port.write(b"\x01\x0f\xff\x00\x13" + request[:-1] + bytes([request[-1] ^ 0x55]))
        time.sleep(0.1)  # a gap: the partial junk is dropped
        port.write(request)
        reply = port.read(6)
    (frame,) = RtuStreamParser(requests=False).feed(reply)
    assert isinstance(frame.pdu, ReadCoilsResponse)
    assert sim.dropped_bytes >= 5 + len(request)
    wait_for(lambda: sim.replies == 1)  # counted just after the write the reply came from


def test_simulator_cli_serves_until_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "io"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-m", "drivers", "simulate", "modbus-io", "--link", str(link), "--unit", "3"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as process:
        assert process.stdout is not None
        try:
            assert process.stdout.readline().strip() == str(link)
            gate = build(ModbusGateSection(port=str(link), options={**FAST, "unit": 3}))
            try:
                gate.set_exit_unlocked(False)
                assert gate.health().state is HealthState.OK
            finally:
                gate.close()
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
            assert "coil 1 on" in process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
    assert not link.exists()


# --- timings ------------------------------------------------------------------------------------------


def test_round_trip_timings_over_the_pty(sim: ModbusIoSimulator, gate: GateIO) -> None:
    """Prints p50/p95 (run with -s to see them); asserts only generous bounds."""
    writes = []
    for i in range(60):
        started = time.perf_counter()
        gate.port.write_output(Output.LAMP_GREEN, i % 2 == 0)
        writes.append(time.perf_counter() - started)
    latencies = []
    for _ in range(15):
        started = time.perf_counter()
        sim.set_input("tailgate", True)
        assert gate.wait_event(2.0) is LaneEvent.TAILGATING
        latencies.append(time.perf_counter() - started)
        sim.set_input("tailgate", False)
        wait_for(lambda: not gate.lane_occupied())
    for label, samples in (("coil write + read-back", writes), ("input change to event", latencies)):
        q = statistics.quantiles(samples, n=20)
        print(f"\n{label}: p50 {statistics.median(samples) * 1000:.1f} ms, p95 {q[18] * 1000:.1f} ms")
    # Functional bounds only (the numbers above are the measurement): a write is one round trip, not a
    # retry timeout, and an input is seen by polling, not by the waiter's 2 s budget.
    assert statistics.median(writes) < 1.0
    assert statistics.median(latencies) < 1.0
