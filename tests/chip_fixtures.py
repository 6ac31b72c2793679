"""Fixtures for chip tests over the real PC/SC stack: pcscd, the vpcd virtual reader, the simulator.

Debian's pcscd 1.9.9 always listens on /run/pcscd/pcscd.comm (it ignores PCSCLITE_CSOCK_NAME), and
vpcd has exactly two readers on fixed ports, so tests using it must not run in parallel. They are
marked ``@pytest.mark.xdist_group("vpcd")``, but with pytest 9.2 pytest-xdist's loadgroup silently
groups nothing (pytest-xdist issue 1386), so every test holding the ``vpcd`` fixture also holds an
exclusive file lock shared by all workers. Under that lock a worker starts the suite's pcscd when
none answers; the pid file beside the lock marks it as the suite's (never a system daemon), so any
worker may stop it (the reader-gone test; the last worker at the end of its session). Import the
fixtures by name from this module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.chip.card import SimulatedPassport
from drivers.chip.errors import ChipError
from drivers.chip.pcsc import PcscTransport, daemon_answers
from drivers.chip.simulator import ChipSimulator
from drivers.chip.vpcd import exclusive as vpcd_lock

PCSCD_PID = Path("/run/pcscd/pcscd.pid")
SUITE_PID = Path(tempfile.gettempdir()) / "gerbang-pcscd.pid"
VPCD_READER = "Virtual PCD 00 00"
VPCD_PORT = 35963
DEADLINE_S = 30.0


def wait_until(predicate: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _reader_listed() -> bool:
    transport = PcscTransport()
    try:
        return VPCD_READER in transport.readers()
    except ChipError:
        return False
    finally:
        transport.close()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().replace("\x00", "").strip())  # pcscd writes a NUL after the pid
    except (OSError, ValueError):
        return None


class PcscDaemon:
    """The pcscd the tests talk to: a system one, or the suite's (which tests may stop and restart).

    Call its methods only while holding :func:`vpcd_lock`.
    """

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []

    @property
    def owned(self) -> bool:
        """Whether the running pcscd is the suite's (started by one of its workers)."""
        pid = _read_pid(PCSCD_PID)
        return daemon_answers() and pid is not None and pid == _read_pid(SUITE_PID)

    def ensure_running(self) -> None:
        if daemon_answers():
            wait_until(_reader_listed, "the running pcscd to list the vpcd reader")
        else:
            self.start()

    def start(self) -> None:
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not Path(binary).exists():
            raise RuntimeError("pcscd is not installed (./gerbang setup installs pcscd and vsmartcard-vpcd)")
        child = subprocess.Popen([binary, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._children.append(child)
        SUITE_PID.write_text(str(child.pid))
        wait_until(_reader_listed, "pcscd to list the vpcd reader")

    def stop(self) -> None:
        """Stop the suite's pcscd (never a system one: callers check :attr:`owned`)."""
        pid = _read_pid(SUITE_PID)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not daemon_answers(), "pcscd to stop")
        SUITE_PID.unlink(missing_ok=True)
        for child in self._children:  # reap ours; another worker reaps its own
            if child.pid == pid:
                child.wait(timeout=DEADLINE_S)


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscDaemon]:
    daemon = PcscDaemon()
    yield daemon
    with vpcd_lock():
        if daemon.owned:
            daemon.stop()  # another worker still testing starts a fresh one under the lock


@pytest.fixture
def vpcd(pcscd: PcscDaemon) -> Iterator[PcscDaemon]:
    """Exclusive use of pcscd and the vpcd reader for one test."""
    with vpcd_lock():
        pcscd.ensure_running()
        yield pcscd


@pytest.fixture
def transport(vpcd: PcscDaemon) -> Iterator[PcscTransport]:
    opened = PcscTransport(VPCD_READER)
    yield opened
    opened.close()


@pytest.fixture
def chip_on_reader(transport: PcscTransport) -> Iterator[Callable[[SimulatedPassport], ChipSimulator]]:
    """Puts a simulated chip on the vpcd reader; takes it off (and waits for pcscd to see that) after."""
    started: list[ChipSimulator] = []

    def put(card: SimulatedPassport) -> ChipSimulator:
        simulator = ChipSimulator(card, port=VPCD_PORT).start()
        started.append(simulator)
        assert simulator.wait_connected(DEADLINE_S), "vpcd did not take the simulated card"
        assert transport.wait_card(True, DEADLINE_S), "pcscd did not see the card"
        return simulator

    yield put
    for simulator in started:
        simulator.stop()
    # The next test's card must not meet this one's ghost: vpcd notices a card left at its next poll.
    assert transport.wait_card(False, DEADLINE_S), "pcscd still sees a card"
