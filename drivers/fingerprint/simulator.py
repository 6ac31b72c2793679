"""An R30x / AS608 fingerprint module on a pty, speaking the real packet protocol.

Drivers (ours or third-party ones such as pyfingerprint) open ``endpoint.path`` like the module's
serial port. A simulated traveller drives it through :meth:`R30xSimulator.place_finger` and
:meth:`R30xSimulator.remove_finger`; fingers are modelled by :mod:`drivers.fingerprint.finger_model`.
Replugging the endpoint is a power cycle: buffers and the password verification are lost, the
template library (flash) is kept.

CLI::

    python -m drivers simulate fingerprint --link PATH [--finger ID | --no-finger] [--password HEX]

prints the link path and serves until SIGTERM; stdin lines ``place ID`` and ``remove`` move the
simulated finger.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

from drivers.fingerprint import finger_model
from drivers.fingerprint.commands import (
    BAUD_UNIT,
    CHAR_BUFFERS,
    DEFAULT_PASSWORD,
    INDEX_PAGE_SLOTS,
    INDEX_PAGES,
    PACKET_SIZES,
    Command,
    Confirmation,
    Instruction,
    SystemParameters,
    decode_command,
    encode_index_page,
    encode_reply,
)
from drivers.fingerprint.protocol import (
    DEFAULT_ADDRESS,
    DataAssembler,
    Packet,
    PacketKind,
    PacketParser,
    ProtocolError,
    data_packets,
    encode,
)
from drivers.pty_endpoint import PtyEndpoint

template_for = finger_model.template_for

SYSTEM_ID = 0x0009
DEFAULT_CAPACITY = 1000
DEFAULT_PACKET_SIZE = 128
_READ_SLICE_S = 0.05  # how long the serve loop waits for bytes before looking at its stop flag
_STATUS_PASSWORD_VERIFIED = 0x04
_STATUS_IMAGE_VALID = 0x08


@dataclass(frozen=True)
class _Response:
    code: int
    fields: tuple[int | bytes, ...] = ()
    upload: bytes | None = None  # characteristics to send as data packets after the acknowledgement
    download_into: int | None = None  # buffer that the host's following data packets go into


class R30xSimulator:
    def __init__(
        self,
        endpoint: PtyEndpoint,
        *,
        password: int = DEFAULT_PASSWORD,
        address: int = DEFAULT_ADDRESS,
        capacity: int = DEFAULT_CAPACITY,
        packet_size: int = DEFAULT_PACKET_SIZE,
        security_level: int = 3,
        baudrate: int = 57600,
        download_timeout_s: float = 1.0,
    ) -> None:
        if packet_size not in PACKET_SIZES:
            raise ValueError(f"packet size must be one of {PACKET_SIZES}")
        if not 1 <= capacity <= INDEX_PAGES * INDEX_PAGE_SLOTS:
            raise ValueError(f"capacity must be 1..{INDEX_PAGES * INDEX_PAGE_SLOTS}")
        self.endpoint = endpoint
        self.password = password
        self.address = address
        self.capacity = capacity
        self.packet_size = packet_size
        self.security_level = security_level
        self.baudrate = baudrate
        self.download_timeout_s = download_timeout_s
        self.served: Counter[Instruction] = Counter()  # commands answered, per instruction
        self.ignored_packets = 0  # for another address, or not expected at that point
        self._library: dict[int, bytes] = {}
        self._lock = threading.RLock()
        self._finger: int | None = None
        self._unusable_left = 0
        self._captures = 0
        self._injected: deque[tuple[Instruction | None, int]] = deque()
        self._noise = b""
        self._parser = PacketParser()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Volatile module state, lost on a power cycle (see _power_on).
        self._verified = False
        self._image: bytes | None = None
        self._buffers: dict[int, bytes] = {}
        self._download: tuple[int, DataAssembler, float] | None = None  # buffer, data so far, deadline

    # --- control API (any thread) ----------------------------------------------------------------

    def start(self) -> R30xSimulator:
        """Power on and serve in a daemon thread (after :meth:`stop`, this is a power cycle)."""
        if self._thread is None or not self._thread.is_alive():
            self._power_on()
            self._stop.clear()
            self._thread = threading.Thread(target=self._serve, name="r30x-simulator", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def place_finger(self, finger_id: int, *, unusable_captures: int = 0) -> None:
        """Put ``finger_id`` on the sensor; the first ``unusable_captures`` images are too messy."""
        with self._lock:
            self._finger = finger_id
            self._unusable_left = unusable_captures

    def remove_finger(self) -> None:
        with self._lock:
            self._finger = None
            self._unusable_left = 0

    @property
    def finger(self) -> int | None:
        return self._finger

    @property
    def template_count(self) -> int:
        with self._lock:
            return len(self._library)

    def inject(self, code: int, instruction: Instruction | None = None) -> None:
        """Answer the next command (of ``instruction``, if given) with ``code`` and do nothing else."""
        with self._lock:
            self._injected.append((instruction, code))

    def add_noise(self, noise: bytes) -> None:
        """Send ``noise`` on the line just before the next acknowledgement."""
        with self._lock:
            self._noise += noise

    # --- serve loop ------------------------------------------------------------------------------

    def _serve(self) -> None:
        fd = self.endpoint.master_fd
        while not self._stop.is_set():
            if self.endpoint.master_fd != fd:
                fd = self.endpoint.master_fd
                self._power_on()  # replugged
            if not self.endpoint.is_open:
                time.sleep(_READ_SLICE_S)  # unplugged: nothing to serve until the replug
                continue
            try:
                chunk = self.endpoint.read(4096, _READ_SLICE_S)
            except (OSError, ValueError):
                # Unplugged between the endpoint's own check and its select: wait for the replug.
                time.sleep(_READ_SLICE_S)
                continue
            packets = self._parser.feed(chunk) if chunk else self._parser.flush()
            with self._lock:
                for packet in packets:
                    self._handle(packet)
                self._expire_download()

    def _power_on(self) -> None:
        with self._lock:
            self._verified = False
            self._image = None
            self._buffers = {}
            self._download = None
            self._parser.reset()

    def _handle(self, packet: Packet) -> None:
        if packet.address != self.address:
            self.ignored_packets += 1  # a module ignores packets for another address
            return
        if self._download is not None and packet.kind in (PacketKind.DATA, PacketKind.END_OF_DATA):
            self._receive_data(packet)
            return
        if packet.kind is not PacketKind.COMMAND:
            self.ignored_packets += 1
            return
        self._download = None
        try:
            command = decode_command(packet.payload)
        except ProtocolError:
            self._send(PacketKind.ACK, encode_reply(None, Confirmation.PACKET_RECEIVE_ERROR))
            return
        response = self._respond(command)
        self.served[command.instruction] += 1
        self._send(PacketKind.ACK, encode_reply(command.instruction, response.code, *response.fields))
        if response.upload is not None:
            for data_packet in data_packets(response.upload, self.packet_size, self.address):
                self._send(data_packet.kind, data_packet.payload)
        if response.download_into is not None:
            deadline = time.monotonic() + self.download_timeout_s
            self._download = (response.download_into, DataAssembler(), deadline)

    def _receive_data(self, packet: Packet) -> None:
        assert self._download is not None
        buffer, assembler, _ = self._download
        try:
            data = assembler.add(packet)
        except ProtocolError:
            self._download = None  # a module drops a transfer it cannot take, without a word
            return
        if data is None:
            self._download = (buffer, assembler, time.monotonic() + self.download_timeout_s)
        else:
            self._buffers[buffer] = data
            self._download = None

    def _expire_download(self) -> None:
        if self._download is not None and time.monotonic() > self._download[2]:
            self._download = None

    def _send(self, kind: PacketKind, payload: bytes) -> None:
        frame = self._noise + encode(Packet(kind, payload, self.address))
        self._noise = b""
        with contextlib.suppress(OSError):  # unplugged: the bytes go nowhere, as on a real cable
            self.endpoint.write(frame)

    # --- the module ------------------------------------------------------------------------------

    def _respond(self, command: Command) -> _Response:
        for i, (instruction, code) in enumerate(self._injected):
            if instruction in (None, command.instruction):
                del self._injected[i]
                return _Response(code)
        if command.instruction is Instruction.VFY_PWD:
            self._verified = command.parameters[0] == self.password
            return _Response(Confirmation.OK if self._verified else Confirmation.WRONG_PASSWORD)
        if self.password != DEFAULT_PASSWORD and not self._verified:
            return _Response(Confirmation.PASSWORD_REQUIRED)
        handler = getattr(self, f"_do_{command.instruction.name.lower()}")
        response: _Response = handler(*command.parameters)
        return response

    def _do_gen_img(self) -> _Response:
        self._image = None
        if self._finger is None:
            return _Response(Confirmation.NO_FINGER)
        self._captures += 1
        self._image = finger_model.capture(self._finger, self._captures)
        return _Response(Confirmation.OK)

    def _do_img2tz(self, buffer: int) -> _Response:
        if buffer not in CHAR_BUFFERS:
            return _Response(Confirmation.PACKET_RECEIVE_ERROR)
        if self._image is None:
            return _Response(Confirmation.NO_VALID_IMAGE)
        if self._unusable_left > 0:
            self._unusable_left -= 1
            return _Response(Confirmation.IMAGE_MESSY)
        self._buffers[buffer] = self._image
        return _Response(Confirmation.OK)

    def _do_match(self) -> _Response:
        score = finger_model.score(self._buffers.get(1, b""), self._buffers.get(2, b""))
        matched = score >= finger_model.MODULE_MATCH_FLOOR
        return _Response(Confirmation.OK if matched else Confirmation.NO_MATCH, (score,))

    def _do_search(self, buffer: int, first_slot: int, count: int) -> _Response:
        if buffer not in CHAR_BUFFERS:
            return _Response(Confirmation.PACKET_RECEIVE_ERROR)
        probe = self._buffers.get(buffer, b"")
        scored = [
            (finger_model.score(probe, template), slot)
            for slot, template in self._library.items()
            if first_slot <= slot < first_slot + count
        ]
        best_score, best_slot = max(scored, default=(0, 0))
        if best_score < finger_model.MODULE_MATCH_FLOOR:
            return _Response(Confirmation.NOT_FOUND)
        return _Response(Confirmation.OK, (best_slot, best_score))

    def _do_reg_model(self) -> _Response:
        merged = finger_model.merge(self._buffers.get(1, b""), self._buffers.get(2, b""))
        if merged is None:
            return _Response(Confirmation.MERGE_FAIL)
        self._buffers[1] = self._buffers[2] = merged
        return _Response(Confirmation.OK)

    def _do_store(self, buffer: int, slot: int) -> _Response:
        if buffer not in CHAR_BUFFERS:
            return _Response(Confirmation.PACKET_RECEIVE_ERROR)
        if slot >= self.capacity:
            return _Response(Confirmation.BAD_LOCATION)
        if buffer not in self._buffers:
            return _Response(Confirmation.TEMPLATE_READ_ERROR)
        self._library[slot] = self._buffers[buffer]
        return _Response(Confirmation.OK)

    def _do_load_char(self, buffer: int, slot: int) -> _Response:
        if buffer not in CHAR_BUFFERS:
            return _Response(Confirmation.PACKET_RECEIVE_ERROR)
        if slot >= self.capacity:
            return _Response(Confirmation.BAD_LOCATION)
        if slot not in self._library:
            return _Response(Confirmation.TEMPLATE_READ_ERROR)
        self._buffers[buffer] = self._library[slot]
        return _Response(Confirmation.OK)

    def _do_up_char(self, buffer: int) -> _Response:
        if buffer not in self._buffers:
            return _Response(Confirmation.UPLOAD_FEATURE_FAIL)
        return _Response(Confirmation.OK, upload=self._buffers[buffer])

    def _do_down_char(self, buffer: int) -> _Response:
        if buffer not in CHAR_BUFFERS:
            return _Response(Confirmation.DATA_RECEIVE_FAIL)
        return _Response(Confirmation.OK, download_into=buffer)

    def _do_delete_char(self, first_slot: int, count: int) -> _Response:
        if first_slot + count > self.capacity:
            return _Response(Confirmation.BAD_LOCATION)
        for slot in range(first_slot, first_slot + count):
            self._library.pop(slot, None)
        return _Response(Confirmation.OK)

    def _do_empty(self) -> _Response:
        self._library.clear()
        return _Response(Confirmation.OK)

    def _do_read_sys_para(self) -> _Response:
        status = (_STATUS_PASSWORD_VERIFIED if self._verified else 0) | (
            _STATUS_IMAGE_VALID if self._image is not None else 0
        )
        parameters = SystemParameters(
            status=status,
            system_id=SYSTEM_ID,
            capacity=self.capacity,
            security_level=self.security_level,
            address=self.address,
            packet_size=self.packet_size,
            baudrate=self.baudrate - self.baudrate % BAUD_UNIT,
        )
        return _Response(Confirmation.OK, parameters.encode_fields())

    def _do_template_num(self) -> _Response:
        return _Response(Confirmation.OK, (len(self._library),))

    def _do_read_index_table(self, page: int) -> _Response:
        if page >= INDEX_PAGES:
            return _Response(Confirmation.BAD_LOCATION)
        return _Response(Confirmation.OK, (encode_index_page(page, self._library),))


# --- CLI -----------------------------------------------------------------------------------------


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _hex32(text: str) -> int:
    value = int(text, 16)
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError("must fit in 32 bits")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drivers simulate fingerprint",
        description="Serve a simulated ZhianTec R30x / AS608 fingerprint module on a pty. "
        "Stdin lines 'place ID' and 'remove' move the finger.",
    )
    parser.add_argument("--link", type=Path, required=True, help="symlink to create for the pty")
    placed = parser.add_mutually_exclusive_group()
    placed.add_argument("--finger", type=int, help="finger id on the sensor at start")
    placed.add_argument("--no-finger", action="store_true", help="start with no finger (default)")
    parser.add_argument("--password", type=_hex32, default=DEFAULT_PASSWORD, help="module password (hex)")
    parser.add_argument("--address", type=_hex32, default=DEFAULT_ADDRESS, help="module address (hex)")
    parser.add_argument("--packet-size", type=int, choices=PACKET_SIZES, default=DEFAULT_PACKET_SIZE)
    args = parser.parse_args(argv)

    # Blocked before any thread starts, so every thread inherits the mask and only sigwait sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    endpoint = PtyEndpoint(args.link)
    simulator = R30xSimulator(
        endpoint, password=args.password, address=args.address, packet_size=args.packet_size
    )
    if args.finger is not None:
        simulator.place_finger(args.finger)
    simulator.start()
    threading.Thread(target=_follow_stdin, args=(simulator,), daemon=True).start()
    print(endpoint.path, flush=True)
    try:
        signal.sigwait(_STOP_SIGNALS)
    finally:
        simulator.stop()
        endpoint.close()
    return 0


def _follow_stdin(simulator: R30xSimulator) -> None:
    for line in sys.stdin:
        words = line.split()
        if len(words) == 2 and words[0] == "place" and words[1].lstrip("-").isdigit():
            simulator.place_finger(int(words[1]))
        elif words == ["remove"]:
            simulator.remove_finger()
        elif words:
            print(f"unknown command {words[0]!r}: use 'place ID' or 'remove'", file=sys.stderr, flush=True)
