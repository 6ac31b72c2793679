"""Usage: ``python -m drivers simulate chip --lds DIR [--vpcd-port N] [--vpcd-host HOST]``.

A simulated ePassport on a vsmartcard ``vpcd`` virtual reader, so the real PC/SC stack (pcscd,
pyscard, :mod:`drivers.chip.pcsc`) reads it. Its files are DIR/COM.bin, DG1.bin, DG2.bin, SOD.bin
and, when present, DG14.bin, DG15.bin, CardAccess.bin (PACE) and any other DGn.bin, served exactly as
given; BAC/PACE open with the MRZ in DG1; DIR/AA.key.pem (RSA or EC) answers Active Authentication.

:class:`ChipSimulator` is the in-process API the tests use: insert and remove the card, pull it away
after so many APDUs, corrupt a response MAC.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from common.backoff import Backoff
from drivers.chip import files, vpcd
from drivers.chip.card import SigningKey, SimulatedPassport

log = logging.getLogger(__name__)

AA_KEY_FILE = "AA.key.pem"
REQUIRED = ("COM", "DG1", "DG2", "SOD")


def load_lds(directory: Path) -> tuple[dict[str, bytes], SigningKey | None]:
    """The chip's files and Active Authentication key from ``directory``."""
    contents = {
        path.stem: path.read_bytes() for path in sorted(directory.glob("*.bin")) if path.stem in files.FILES
    }
    missing = [name for name in REQUIRED if name not in contents]
    if missing:
        raise FileNotFoundError(f"{directory}: missing {', '.join(f'{n}.bin' for n in missing)}")
    key_path = directory / AA_KEY_FILE
    key = cast(SigningKey, load_pem_private_key(key_path.read_bytes(), None)) if key_path.exists() else None
    return contents, key


class ChipSimulator:
    """Keeps :attr:`card` on the vpcd reader at ``host:port`` while inserted; reconnects if vpcd restarts."""

    def __init__(
        self, card: SimulatedPassport, *, host: str = vpcd.DEFAULT_HOST, port: int = vpcd.DEFAULT_PORT
    ) -> None:
        self.card = card
        self.host = host
        self.port = port
        # Pull the card away (drop the connection unanswered) when this many more APDUs arrive.
        self.remove_after: int | None = None
        self._inserted = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"chip-sim-{port}", daemon=True)

    def start(self, *, inserted: bool = True) -> ChipSimulator:
        if inserted:
            self._inserted.set()
        self._thread.start()
        return self

    def insert_card(self) -> None:
        self._inserted.set()

    def remove_card(self) -> None:
        """Take the card off the reader: vpcd sees the connection close, pcscd reports no card."""
        self._inserted.clear()
        self._drop()

    def wait_connected(self, timeout_s: float) -> bool:
        """Whether vpcd took the card (it asked for the ATR) within ``timeout_s``."""
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self._inserted.set()  # wake the loop so it can see it must stop
        self._drop()
        self._thread.join(timeout=10)

    def __enter__(self) -> ChipSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _drop(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        self._connected.clear()
        if sock is not None:
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _run(self) -> None:
        backoff = Backoff(0.05, 1.0)
        while not self._stopping.is_set():
            self._inserted.wait()
            if self._stopping.is_set():
                return
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2)
            except OSError:
                # vpcd is not listening (pcscd not up yet, or restarting): try again shortly.
                self._stopping.wait(backoff.next_delay())
                continue
            backoff.reset()
            sock.settimeout(None)
            vpcd.tune(sock)
            with self._lock:
                self._sock = sock
            self.card.reset()
            # OSError: the connection went away under us (removed, stopped, or vpcd gone).
            with contextlib.suppress(OSError):
                self._serve(sock)
            self._drop()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            message = vpcd.receive(sock)
            if message is None:
                return
            self._connected.set()  # vpcd accepted us and is talking: the reader sees the card
            if len(message) == 1:
                if message[0] == vpcd.GET_ATR:
                    vpcd.send(sock, self.card.atr)
                elif message[0] in (vpcd.POWER_OFF, vpcd.POWER_ON, vpcd.RESET):
                    self.card.reset()
                continue
            if self.remove_after is not None:
                self.remove_after -= 1
                if self.remove_after <= 0:
                    self.remove_after = None
                    self._inserted.clear()
                    return
            vpcd.send(sock, self.card.process(message))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drivers simulate chip", description=__doc__.split("\n")[2]
    )
    parser.add_argument(
        "--lds", type=Path, required=True, help="folder with COM.bin, DG1.bin, DG2.bin, SOD.bin …"
    )
    parser.add_argument("--vpcd-port", type=int, default=vpcd.DEFAULT_PORT)
    parser.add_argument("--vpcd-host", default=vpcd.DEFAULT_HOST)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        contents, key = load_lds(args.lds)
        card = SimulatedPassport(contents, aa_key=key)
    except (OSError, ValueError, KeyError) as exc:
        print(f"simulate chip: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with ChipSimulator(card, host=args.vpcd_host, port=args.vpcd_port) as simulator:
        log.info(
            "chip on vpcd %s:%d (%s%s)",
            args.vpcd_host,
            args.vpcd_port,
            "PACE+BAC" if files.CARD_ACCESS in contents else "BAC",
            ", AA" if key is not None else "",
        )
        if not simulator.wait_connected(30):
            log.warning("vpcd not reachable yet; still trying")
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
