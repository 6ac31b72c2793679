"""The serial MRZ reader driver against the simulator, over real ptys speaking the real wire format."""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.backoff import Backoff
from drivers.docreader.options import SerialReaderSection
from drivers.docreader.protocol import (
    STATUS_PROFILES,
    DocumentEvent,
    Framing,
    ParserSettings,
    StatusProfile,
    encode_document,
)
from drivers.docreader.reader import SerialDocumentReader, build
from drivers.docreader.simulator import DocReaderSimulator
from drivers.docreader.simulator import main as simulator_main
from drivers.interfaces import DeviceError, DocumentReader, HealthState
from drivers.pty_endpoint import PtyEndpoint

TD3 = ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10")
TD2 = ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6")
TD1 = ("I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<")
IDLE_S = 0.15
WAIT_S = 3.0
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(30)


class Bench:
    """A pty, the simulated reader on its device side and the driver on the host side."""

    def __init__(self, tmp_path: Path) -> None:
        self.endpoint = PtyEndpoint(tmp_path / "docreader")
        self.parts: list[SerialDocumentReader | DocReaderSimulator] = []

    def simulator(
        self,
        framing: Framing = Framing.CR,
        *,
        blank_line: bool = True,
        status: StatusProfile | None = None,
        baudrate: int | None = None,
    ) -> DocReaderSimulator:
        simulator = DocReaderSimulator(
            self.endpoint, framing, blank_line=blank_line, status=status, baudrate=baudrate
        )
        simulator.start()
        self.parts.append(simulator)
        return simulator

    def reader(
        self,
        framing: Framing = Framing.CR,
        *,
        status: StatusProfile | None = None,
        queue_size: int = 4,
        baudrate: int = 9600,
        idle_s: float = IDLE_S,
    ) -> SerialDocumentReader:
        reader = SerialDocumentReader(
            self.endpoint.path,
            baudrate=baudrate,
            settings=ParserSettings(framing, idle_s, 256, status or StatusProfile()),
            queue_size=queue_size,
            backoff=Backoff(0.02, 0.1),
        )
        self.parts.append(reader)
        return reader

    def close(self) -> None:
        for part in reversed(self.parts):
            if isinstance(part, SerialDocumentReader):
                part.close()
            else:
                part.stop()
        self.endpoint.close()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    bench = Bench(tmp_path)
    yield bench
    bench.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def read_lines(reader: SerialDocumentReader) -> tuple[str, ...] | None:
    read = reader.read(WAIT_S)
    return None if read is None else read.lines


@pytest.mark.parametrize("framing", list(Framing))
@pytest.mark.parametrize("blank_line", [True, False])
def test_every_framing_and_terminator_over_the_pty(bench: Bench, framing: Framing, blank_line: bool) -> None:
    simulator = bench.simulator(framing, blank_line=blank_line)
    reader = bench.reader(framing)
    assert isinstance(reader, DocumentReader)
    for lines in (TD3, TD2, TD1):
        simulator.present(lines)
        assert read_lines(reader) == lines
    assert reader.dropped == []
    assert reader.health().state is HealthState.OK


def test_the_icao_specimen_arrives_intact_with_its_read_time(bench: Bench) -> None:
    simulator = bench.simulator(Framing.CRLF)
    reader = bench.reader(Framing.CRLF)
    before = time.monotonic()
    simulator.present(TD3)
    read = reader.read(WAIT_S)
    assert read is not None
    assert read.lines == (
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    )
    assert before <= read.read_at <= time.monotonic()
    assert read.meta == {}


@pytest.mark.parametrize("framing", list(Framing))
def test_noise_between_documents_is_dropped_and_reported(bench: Bench, framing: Framing) -> None:
    simulator = bench.simulator(framing)
    reader = bench.reader(framing)
    simulator.present(TD1)
    assert read_lines(reader) == TD1
    # wrong-baud style junk: NULs, bytes >= 0x80, stray framing bytes, then the next document at once
    junk = b"\x00\x00\xff\x81\x02\x03 \xfe\xe0\x00"
    simulator.send_raw(junk)
    simulator.present(TD3)
    assert read_lines(reader) == TD3
    assert reader.dropped_count >= 1
    # the stray STX ETX is an empty frame to an STX/ETX reader, noise to a line reader
    assert {reason for reason, _ in reader.dropped} <= {"noise", "bad_shape"}
    assert sum(n for _, n in reader.dropped) == len(junk)


def test_a_noise_burst_followed_by_a_pause_costs_nothing(bench: Bench) -> None:
    simulator = bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR)
    burst = b"\x90~~garbage at the wrong baud rate~~\x1f" * 3 + b"~~ends like text~~"
    simulator.send_raw(burst)
    # the last bit could still be the start of a line: only the pause settles it
    wait_for(lambda: reader.dropped_bytes == len(burst))
    simulator.present(TD2)
    assert read_lines(reader) == TD2


def test_logs_carry_counts_never_mrz_text(bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    simulator = bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR)
    simulator.send_raw(TD3[0].encode() + b"\r\r")  # half a passport: dropped
    simulator.present(TD3)
    assert read_lines(reader) == TD3
    simulator.unplug()
    wait_for(lambda: reader.health().state is not HealthState.OK)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "dropped 1 fragment(s), 45 byte(s) (truncated=1)" in text
    assert "document of 2 line(s) × 44" in text
    for secret in ("ERIKSSON", "L898902C3", "7408122", "<<<"):
        assert secret not in text


def test_a_cut_off_document_is_dropped_never_delivered(bench: Bench) -> None:
    simulator = bench.simulator(Framing.LF)
    reader = bench.reader(Framing.LF)
    simulator.send_raw(TD1[0].encode() + b"\n" + TD1[1][:12].encode())
    assert reader.read(IDLE_S * 4) is None
    assert sorted(reader.dropped) == [("bad_shape", 12), ("truncated", 31)]
    simulator.present(TD1)
    assert read_lines(reader) == TD1


def test_a_frame_that_never_ends_is_dropped_and_the_next_one_read(bench: Bench) -> None:
    simulator = bench.simulator(Framing.STX_ETX)
    reader = bench.reader(Framing.STX_ETX)
    simulator.send_raw(b"\x02" + TD3[0].encode() + b"\r" + b"<" * 300)  # no ETX, longer than allowed
    simulator.present(TD3)
    assert read_lines(reader) == TD3
    assert {reason for reason, _ in reader.dropped} == {"oversize"}


def test_documents_between_reads_wait_in_order_and_overflow_drops_the_oldest(bench: Bench) -> None:
    simulator = bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR, queue_size=2)
    for lines in (TD1, TD2, TD3):
        simulator.present(lines)
    wait_for(lambda: reader.documents_read == 3)
    assert read_lines(reader) == TD2
    assert read_lines(reader) == TD3
    assert reader.read(0.05) is None
    assert reader.dropped == [("queue_overflow", 93)]


def test_read_returns_none_in_time_when_nothing_comes(bench: Bench) -> None:
    bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR)
    for timeout_s in (0.0, 0.05, 0.3):
        start = time.monotonic()
        assert reader.read(timeout_s) is None
        assert time.monotonic() - start < timeout_s + 0.1


def test_status_events_are_available_besides_read(bench: Bench) -> None:
    status = STATUS_PROFILES["at-lines"]
    simulator = bench.simulator(Framing.CRLF, status=status)
    reader = bench.reader(Framing.CRLF, status=status)
    assert reader.last_event is None
    simulator.present(TD3)
    assert read_lines(reader) == TD3
    simulator.remove()
    wait_for(lambda: reader.last_event is not None and reader.last_event.kind is DocumentEvent.REMOVED)
    assert [event.kind for event in reader.events()] == [DocumentEvent.PRESENT, DocumentEvent.REMOVED]
    assert reader.events() == []
    assert reader.dropped == []


def test_unplug_mid_document_raises_then_the_driver_reconnects_by_itself(bench: Bench) -> None:
    simulator = bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR)
    simulator.send_raw(TD3[0].encode() + b"\r")  # half a passport, then the cable goes
    assert simulator.wait_host_read(WAIT_S)
    simulator.unplug()
    start = time.monotonic()
    with pytest.raises(DeviceError) as raised:
        reader.read(WAIT_S)
    assert time.monotonic() - start < 0.5, "a lost port is reported promptly, not after the timeout"
    assert raised.value.device == "document_reader"
    assert reader.health().state in (HealthState.DEGRADED, HealthState.FAILED)
    wait_for(lambda: reader.health().state is HealthState.FAILED)
    assert ("truncated", 45) in reader.dropped
    with pytest.raises(DeviceError):
        reader.read(0.1)

    simulator.replug()
    wait_for(lambda: reader.health().state is HealthState.OK)
    simulator.present(TD3)
    assert read_lines(reader) == TD3
    assert reader.reconnects == 1


def test_a_document_completed_before_the_unplug_is_still_delivered(bench: Bench) -> None:
    simulator = bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR)
    simulator.present(TD2)
    wait_for(lambda: reader.documents_read == 1)
    simulator.unplug()
    wait_for(lambda: reader.health().state is not HealthState.OK)
    assert read_lines(reader) == TD2
    with pytest.raises(DeviceError):
        reader.read(0.1)


def test_a_port_missing_at_start_is_degraded_until_it_appears(tmp_path: Path) -> None:
    link = tmp_path / "later"
    reader = SerialDocumentReader(str(link), backoff=Backoff(0.02, 0.1))
    endpoint: PtyEndpoint | None = None
    simulator: DocReaderSimulator | None = None
    try:
        assert reader.health().state is HealthState.DEGRADED
        with pytest.raises(DeviceError):
            reader.read(0.1)
        endpoint = PtyEndpoint(link)
        simulator = DocReaderSimulator(endpoint)
        simulator.start()
        wait_for(lambda: reader.health().state is HealthState.OK)
        simulator.present(TD3)
        assert read_lines(reader) == TD3
    finally:
        reader.close()
        if simulator is not None:
            simulator.stop()
        if endpoint is not None:
            endpoint.close()


def test_a_stream_of_junk_degrades_health_until_a_good_read(bench: Bench) -> None:
    simulator = bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR)  # the reader sends CR LF: its LFs are noise here
    for _ in range(6):
        simulator.send_raw(b"\x00" + b"\xaa" * 20 + b"ZZZ\r")
    wait_for(lambda: reader.health().state is HealthState.DEGRADED)
    assert "framing" in reader.health().reason
    simulator.present(TD3)
    assert read_lines(reader) == TD3
    assert reader.health().state is HealthState.OK


def test_closed_reader_refuses_to_read(bench: Bench) -> None:
    bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR)
    reader.close()
    assert reader.health().state is HealthState.FAILED
    with pytest.raises(DeviceError):
        reader.read(0.1)


def test_the_simulator_paces_output_like_the_line_rate(bench: Bench) -> None:
    simulator = bench.simulator(Framing.CRLF, baudrate=9600)
    reader = bench.reader(Framing.CRLF)
    start = time.monotonic()
    simulator.present(TD3)
    assert read_lines(reader) == TD3
    wire_time_s = 2 * 46 * 10 / 9600  # both lines with CR LF at 8N1; the blank line comes after
    assert time.monotonic() - start >= wire_time_s * 0.9


def test_present_while_unplugged_is_lost_like_on_a_dead_reader(bench: Bench) -> None:
    simulator = bench.simulator(Framing.CR)
    reader = bench.reader(Framing.CR)
    simulator.unplug()
    simulator.present(TD3)
    wait_for(lambda: simulator.bytes_lost == len(encode_document(TD3, Framing.CR)))
    simulator.replug()
    wait_for(lambda: reader.health().state is HealthState.OK)
    assert reader.read(0.2) is None


# --- the factory ----------------------------------------------------------------------------------


def test_build_makes_a_working_reader_from_the_config_section(bench: Bench) -> None:
    simulator = bench.simulator(Framing.STX_ETX, status=STATUS_PROFILES["control-bytes"])
    section = SerialReaderSection(
        port=bench.endpoint.path,
        baudrate=115200,
        options={"framing": "stx-etx", "events": "control-bytes", "idle_ms": 200},
    )
    reader = build(section)
    bench.parts.append(reader)
    simulator.present(TD1)
    assert read_lines(reader) == TD1
    assert reader.last_event is not None and reader.last_event.kind is DocumentEvent.PRESENT


# --- the command-line simulator ------------------------------------------------------------------


def test_cli_simulator_feeds_stdin_mrz_to_the_driver(tmp_path: Path) -> None:
    link = tmp_path / "cli-docreader"
    process = subprocess.Popen(
        [sys.executable, "-m", "drivers", "simulate", "docreader", "--link", str(link), "--framing", "crlf"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader: SerialDocumentReader | None = None
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == str(link)
        reader = SerialDocumentReader(str(link), settings=ParserSettings(Framing.CRLF, IDLE_S))
        wait_for(lambda: reader is not None and reader.health().state is HealthState.OK)
        process.stdin.write("\n".join(TD3) + "\n\n")  # a blank line: this document is complete
        process.stdin.flush()
        assert read_lines(reader) == TD3
        process.stdin.write("\n".join(TD1) + "\n")
        process.stdin.close()  # the end of input completes the last document too
        assert read_lines(reader) == TD1
        assert process.wait(WAIT_S) == 0  # and the simulator exits once the host has read it all
    finally:
        if reader is not None:
            reader.close()
        if process.poll() is None:
            process.terminate()
            process.wait(WAIT_S)
    stderr = process.stderr.read() if process.stderr else ""
    assert "sent 2 document(s)" in stderr
    assert TD3[0] not in stderr and "ERIKSSON" not in stderr
    assert not link.exists()


def test_cli_simulator_stops_on_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "cli-term"
    process = subprocess.Popen(
        [sys.executable, "-m", "drivers", "simulate", "docreader", "--link", str(link)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == str(link)
        assert link.is_symlink()
        process.terminate()
        assert process.wait(WAIT_S) == 0
        assert not link.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT_S)


def test_cli_simulator_reports_a_link_it_cannot_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert simulator_main(["--link", str(tmp_path / "missing" / "link")]) == 2
    assert "cannot create" in capsys.readouterr().err


# --- timing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("baudrate", [9600, 115200])
def test_round_trip_from_present_to_read(bench: Bench, baudrate: int) -> None:
    """present() → read() over the pty. Ptys ignore the baud setting; the simulator is unpaced here."""
    simulator = bench.simulator(Framing.CRLF)
    reader = bench.reader(Framing.CRLF, baudrate=baudrate, idle_s=10.0)
    samples = []
    for _ in range(200):
        start = time.monotonic()
        simulator.present(TD3)
        assert read_lines(reader) == TD3
        samples.append(time.monotonic() - start)
    p50 = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[-1]
    print(
        f"\ndocreader round trip @{baudrate} (pty, unpaced): p50 {p50 * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms"
    )
    # A complete shape is delivered at once, never after the 10 s idle timeout (however loaded the machine).
    assert max(samples) < 5.0
