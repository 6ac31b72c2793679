"""Fixtures for chip tests over the real PC/SC stack: pcscd, the vpcd virtual reader, the simulator.

Debian's pcscd 1.9.9 always listens on /run/pcscd/pcscd.comm (it ignores PCSCLITE_CSOCK_NAME), and
vpcd has exactly two readers on fixed ports, so tests using it share one daemon and must not run in
parallel: mark them ``@pytest.mark.xdist_group("vpcd")``. Import these fixtures with
``from tests.chip_fixtures import *`` (noqa) or ``pytest_plugins``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.chip.card import SimulatedPassport
from drivers.chip.errors import ChipError
from drivers.chip.pcsc import PcscTransport
from drivers.chip.simulator import ChipSimulator

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_READER = "Virtual PCD 00 00"
VPCD_PORT = 35963
DEADLINE_S = 30.0


def wait_until(predicate: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _daemon_answers() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


def _reader_listed() -> bool:
    transport = PcscTransport()
    try:
        return VPCD_READER in transport.readers()
    except ChipError:
        return False
    finally:
        transport.close()


class PcscDaemon:
    """The pcscd the tests talk to: one already running, or ours (``owned``), which tests may restart."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.owned = not _daemon_answers()

    def start(self) -> None:
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not Path(binary).exists():
            raise RuntimeError("pcscd is not installed (./gerbang setup installs pcscd and vsmartcard-vpcd)")
        self.process = subprocess.Popen([binary, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(_reader_listed, "pcscd to list the vpcd reader")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=DEADLINE_S)
            self.process = None
        wait_until(lambda: not _daemon_answers(), "pcscd to stop")


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscDaemon]:
    daemon = PcscDaemon()
    if daemon.owned:
        daemon.start()
    else:
        wait_until(_reader_listed, "the running pcscd to list the vpcd reader")
    yield daemon
    if daemon.owned:
        daemon.stop()


@pytest.fixture
def transport(pcscd: PcscDaemon) -> Iterator[PcscTransport]:
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
