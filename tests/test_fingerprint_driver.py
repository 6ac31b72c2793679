"""The R30x driver against the simulator over a real pty, speaking the real wire protocol."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common.backoff import Backoff
from drivers.fingerprint.client import R30xClient
from drivers.fingerprint.commands import Confirmation, Instruction
from drivers.fingerprint.errors import (
    ERRORS,
    ConfirmationError,
    MergeError,
    ResponseTimeout,
    WrongPasswordError,
)
from drivers.fingerprint.factory import build
from drivers.fingerprint.options import R30xSection
from drivers.fingerprint.protocol import START_CODE
from drivers.fingerprint.sensor import R30xFingerprintSensor
from drivers.fingerprint.simulator import R30xSimulator, template_for
from drivers.interfaces import DeviceError, FingerprintSensor, HealthState
from drivers.pty_endpoint import PtyEndpoint
from drivers.serial_link import SerialLink

# Everything here talks over a pty: a lost answer must fail a test, not hang the suite.
pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[1]
FAST = {"response_timeout_s": 0.3, "reconnect_initial_s": 0.02, "reconnect_max_s": 0.05}


@dataclass
class Rig:
    endpoint: PtyEndpoint
    simulator: R30xSimulator
    sensor: R30xFingerprintSensor

    @property
    def client(self) -> R30xClient:
        return self.sensor.client


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(*, options: dict[str, Any] | None = None, **simulator_options: Any) -> Rig:
        endpoint = PtyEndpoint(tmp_path / f"fingerprint{len(rigs)}")
        simulator = R30xSimulator(endpoint, **simulator_options).start()
        section = R30xSection(port=endpoint.path, options={**FAST, **(options or {})})
        rig = Rig(endpoint, simulator, build(section))
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.sensor.close()
        rig.simulator.stop()
        rig.endpoint.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# --- the gate's verify ----------------------------------------------------------------------------


def test_verify_same_finger_matches_and_other_finger_does_not(rig):
    assert isinstance(rig.sensor, FingerprintSensor)
    rig.simulator.place_finger(7)
    same = rig.sensor.verify(template_for(7), timeout_s=1.0)
    other = rig.sensor.verify(template_for(8), timeout_s=1.0)
    assert same is not None and same.matched and same.score >= rig.sensor.threshold
    assert other is not None and not other.matched and other.score < rig.sensor.threshold
    served = rig.simulator.served
    assert served[Instruction.DOWN_CHAR] == served[Instruction.MATCH] == 2


def test_no_finger_returns_none_within_the_timeout(rig):
    started = time.monotonic()
    assert rig.sensor.verify(template_for(7), timeout_s=0.3) is None
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 5.0  # its own timeout, not a stuck wait
    assert rig.simulator.served[Instruction.GEN_IMG] > 1  # it kept looking for a finger
    assert rig.simulator.served[Instruction.DOWN_CHAR] == 0


def test_a_finger_placed_while_waiting_is_verified(rig):
    threading.Timer(0.2, rig.simulator.place_finger, args=(3,)).start()
    result = rig.sensor.verify(template_for(3), timeout_s=3.0)
    assert result is not None and result.matched


def test_unusable_images_are_captured_again(rig):
    rig.simulator.place_finger(5, unusable_captures=2)
    result = rig.sensor.verify(template_for(5), timeout_s=2.0)
    assert result is not None and result.matched
    assert rig.simulator.served[Instruction.IMG2TZ] == 3


def test_only_unusable_images_means_no_finger(rig):
    rig.simulator.place_finger(5, unusable_captures=1000)
    assert rig.sensor.verify(template_for(5), timeout_s=0.3) is None


def test_threshold_comes_from_the_configuration(make_rig):
    lenient = make_rig()
    lenient.simulator.place_finger(2)
    result = lenient.sensor.verify(template_for(2), 1.0)
    assert result is not None and result.matched
    strict = make_rig(options={"threshold": result.score + 100})
    strict.simulator.place_finger(2)
    again = strict.sensor.verify(template_for(2), 1.0)
    assert again is not None and again.score > 0 and not again.matched


def test_a_reference_of_the_wrong_size_is_refused_before_touching_the_sensor(rig):
    with pytest.raises(ValueError, match="512"):
        rig.sensor.verify(template_for(1)[:100], 1.0)
    assert sum(rig.simulator.served.values()) == 0


# --- the client, command by command ---------------------------------------------------------------


def test_session_reads_the_module_parameters(make_rig):
    rig = make_rig(packet_size=64, capacity=300, security_level=4)
    parameters = rig.client.connect()
    assert (parameters.packet_size, parameters.capacity, parameters.security_level) == (64, 300, 4)
    assert parameters.baudrate == 57600
    assert rig.sensor.health().state is HealthState.OK


def test_enroll_store_search_and_manage_the_library(make_rig):
    rig = make_rig(packet_size=32)  # many data packets per template
    client, simulator = rig.client, rig.simulator
    simulator.place_finger(11)
    for buffer in (1, 2):
        assert client.gen_img()
        client.img2tz(buffer)
    client.reg_model()
    client.store(1, 42)
    assert client.template_count() == 1 and client.read_index_table(0) == {42}
    assert client.read_index_table(1) == frozenset()

    assert client.gen_img()
    client.img2tz(1)
    hit = client.search(1, 0, 1000)
    assert hit is not None and hit.slot == 42 and hit.score > 100

    uploaded = client.up_char(1)
    assert len(uploaded) == 512
    client.down_char(2, uploaded)
    assert client.up_char(2) == uploaded
    assert client.match() > 250  # identical characteristics

    client.load_char(2, 42)
    assert client.match() > 100
    simulator.place_finger(12)
    assert client.gen_img()
    client.img2tz(1)
    assert client.search(1, 0, 1000) is None
    assert client.match() == 0

    client.delete_char(42)
    assert client.template_count() == 0
    client.store(2, 7)
    client.empty()
    assert client.template_count() == 0


def test_two_different_fingers_do_not_merge(rig):
    rig.simulator.place_finger(1)
    assert rig.client.gen_img()
    rig.client.img2tz(1)
    rig.simulator.place_finger(2)
    assert rig.client.gen_img()
    rig.client.img2tz(2)
    with pytest.raises(MergeError) as caught:
        rig.client.reg_model()
    assert caught.value.code == Confirmation.MERGE_FAIL


@pytest.mark.parametrize("code", sorted(ERRORS), ids=lambda c: c.name)
def test_every_confirmation_code_raises_its_exception_over_the_wire(rig, code):
    rig.simulator.inject(code, Instruction.TEMPLATE_NUM)
    with pytest.raises(ERRORS[code]) as caught:
        rig.client.template_count()
    assert caught.value.code == code and caught.value.instruction is Instruction.TEMPLATE_NUM
    assert isinstance(caught.value, DeviceError)
    assert rig.client.template_count() == 0  # the next command is unaffected


def test_codes_that_are_normal_answers_become_results(rig):
    rig.simulator.place_finger(1)
    rig.simulator.inject(Confirmation.NO_FINGER, Instruction.GEN_IMG)
    assert rig.client.gen_img() is False
    assert rig.client.gen_img() is True
    rig.client.img2tz(1)
    rig.client.img2tz(2)
    rig.simulator.inject(Confirmation.NO_MATCH, Instruction.MATCH)
    assert rig.client.match() == 0
    assert rig.client.match() > 0
    assert rig.client.search(1, 0, 1000) is None  # empty library
    rig.simulator.inject(0x77)
    with pytest.raises(ConfirmationError, match="0x77"):
        rig.client.empty()


# --- passwords and addresses ----------------------------------------------------------------------


def test_wrong_password_is_a_clear_configuration_error(make_rig):
    rig = make_rig(password=0x5EC2E7)
    rig.simulator.place_finger(1)
    with pytest.raises(WrongPasswordError) as caught:
        rig.sensor.verify(template_for(1), 1.0)
    assert "wrong password" in str(caught.value)
    health = rig.sensor.health()
    assert health.state is HealthState.FAILED and "password" in health.reason
    assert "5EC2E7" not in health.reason.upper() and "5EC2E7" not in str(caught.value).upper()


def test_password_is_verified_again_after_a_replug(make_rig):
    rig = make_rig(password=0xC0FFEE, options={"password": 0xC0FFEE})
    rig.simulator.place_finger(4)
    assert rig.sensor.verify(template_for(4), 1.0).matched
    rig.endpoint.replug()  # the module restarts and forgets the verification
    with pytest.raises(DeviceError):
        rig.sensor.verify(template_for(4), 1.0)  # the old port is gone
    assert wait_for(lambda: rig.sensor.health().state is HealthState.OK)
    assert rig.sensor.verify(template_for(4), 1.0).matched
    assert rig.simulator.served[Instruction.VFY_PWD] == 2


def test_a_module_at_another_address_does_not_answer(make_rig):
    rig = make_rig(address=0x12345678)
    with pytest.raises(ResponseTimeout, match="address"):
        rig.client.template_count()
    assert rig.simulator.ignored_packets >= 1
    right = R30xClient(SerialLink("fingerprint", rig.endpoint.path, timeout_s=0.05), address=0x12345678)
    try:
        assert right.template_count() == 0
    finally:
        right.close()


# --- line noise, silence, unplugging --------------------------------------------------------------


def test_noise_on_the_line_is_skipped_and_counted(rig):
    rig.client.connect()
    noise = b"\x00\xff" + START_CODE + b"\xff\xff\xff\xff\x07\x00\x05\x00" + START_CODE + b"\x13garbage"
    rig.simulator.place_finger(9)
    rig.simulator.add_noise(noise)
    result = rig.sensor.verify(template_for(9), 1.0)
    assert result is not None and result.matched
    assert rig.client.dropped_bytes == len(noise)
    assert rig.sensor.health().state is HealthState.OK


def test_a_silent_module_times_out_then_recovers(tmp_path):
    endpoint = PtyEndpoint(tmp_path / "fp")
    simulator = R30xSimulator(endpoint).start()
    link = SerialLink("fingerprint", endpoint.path, timeout_s=0.05)
    client = R30xClient(link, response_timeout_s=0.2, probe_backoff=Backoff(0.05, 0.1))
    sensor = R30xFingerprintSensor(client)
    try:
        assert sensor.health().state is HealthState.OK
        simulator.stop()  # the adapter is still there, the module has lost power
        started = time.monotonic()
        with pytest.raises(ResponseTimeout):
            sensor.verify(template_for(1), 1.0)
        assert time.monotonic() - started < 1.5  # one retry, never a hang
        assert sensor.health().state is not HealthState.OK
        assert wait_for(lambda: sensor.health().state is HealthState.FAILED)
        simulator.place_finger(1)
        simulator.start()
        assert wait_for(lambda: sensor.health().state is HealthState.OK)
        assert sensor.verify(template_for(1), 1.0).matched
    finally:
        sensor.close()
        simulator.stop()
        endpoint.close()


def test_unplug_mid_verify_fails_fast_and_recovers_by_itself(rig):
    assert rig.sensor.health().state is HealthState.OK
    threading.Timer(0.2, rig.endpoint.unplug).start()
    started = time.monotonic()
    with pytest.raises(DeviceError):
        rig.sensor.verify(template_for(6), timeout_s=30.0)
    assert time.monotonic() - started < 20.0  # told by the unplug, not by the 30 s verify timeout
    assert rig.sensor.health().state is HealthState.DEGRADED
    assert wait_for(lambda: rig.sensor.health().state is HealthState.FAILED)
    with pytest.raises(DeviceError):
        rig.sensor.verify(template_for(6), timeout_s=0.2)

    rig.endpoint.replug()
    rig.simulator.place_finger(6)
    assert wait_for(lambda: rig.sensor.health().state is HealthState.OK)
    assert rig.client.link.reconnects >= 1
    result = rig.sensor.verify(template_for(6), timeout_s=1.0)
    assert result is not None and result.matched


def test_a_sensor_absent_at_start_is_picked_up_when_plugged_in(tmp_path):
    port = tmp_path / "late"
    sensor = build(R30xSection(port=str(port), options=FAST))
    endpoint = None
    try:
        assert sensor.health().state is not HealthState.OK
        with pytest.raises(DeviceError):
            sensor.verify(template_for(1), 0.1)
        endpoint = PtyEndpoint(port)
        simulator = R30xSimulator(endpoint).start()
        simulator.place_finger(1)
        assert wait_for(lambda: sensor.health().state is HealthState.OK)
        assert sensor.verify(template_for(1), 1.0).matched
        simulator.stop()
    finally:
        sensor.close()
        if endpoint is not None:
            endpoint.close()


# --- configuration --------------------------------------------------------------------------------


def test_configuration_reaches_the_driver():
    sensor = build(
        R30xSection(
            port="/dev/null-fingerprint",
            baudrate=115200,
            options={"threshold": 70, "address": 0x0A0B0C0D, "response_timeout_s": 1.5},
        )
    )
    assert sensor.threshold == 70
    assert sensor.client.address == 0x0A0B0C0D and sensor.client.response_timeout_s == 1.5
    assert sensor.client.link.baudrate == 115200
    assert build(R30xSection(port="/dev/x")).client.link.baudrate == 57600


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_serves_until_sigterm_and_takes_fingers_from_stdin(tmp_path):
    link = tmp_path / "cli-fp"
    command = ["simulate", "fingerprint", "--link", str(link), "--finger", "4", "--password", "1A2B"]
    process = subprocess.Popen(
        [sys.executable, "-m", "drivers", *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    sensor = build(R30xSection(port=str(link), options={**FAST, "password": 0x1A2B}))
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == str(link)
        assert sensor.verify(template_for(4), 1.0).matched
        process.stdin.write("remove\n")
        process.stdin.flush()
        assert wait_for(lambda: sensor.verify(template_for(4), 0.1) is None)
        process.stdin.write("place 9\n")
        process.stdin.flush()
        assert wait_for(lambda: (r := sensor.verify(template_for(9), 0.1)) is not None and r.matched)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert not link.exists()
    finally:
        sensor.close()
        if process.poll() is None:
            process.kill()


# --- timings --------------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def test_round_trip_timings_over_the_pty(rig, capsys):
    client, simulator = rig.client, rig.simulator
    client.connect()
    simulator.place_finger(1)
    client.gen_img()
    reference = template_for(1)
    commands: dict[str, Callable[[], object]] = {
        "VfyPwd": client.verify_password,
        "GenImg": client.gen_img,
        "Img2Tz": lambda: client.img2tz(1),
        "DownChar": lambda: client.down_char(2, reference),
        "Match": client.match,
        "verify()": lambda: rig.sensor.verify(reference, 1.0),
    }
    lines = []
    for label, command in commands.items():
        samples = []
        for _ in range(200):
            started = time.perf_counter()
            command()
            samples.append(time.perf_counter() - started)
        p50, p95 = percentiles(samples)
        lines.append(f"{label:9s} p50 {p50 * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms")
        assert p95 < 0.25  # far inside the response timeout: the pty adds no polling delay
    with capsys.disabled():
        print("\nR30x round trips over the pty (simulator, 200 samples each):\n  " + "\n  ".join(lines))
