"""Host side of the R30x / AS608 protocol: one method per command, on top of a :class:`SerialLink`.

Every exchange is bounded by a response timeout. A session is bound to one opening of the port:
after the port was reopened (the adapter was unplugged, the module lost power) the password is
verified and the system parameters are read again before anything else is sent, because a
restarted module has forgotten both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from common.backoff import Backoff
from drivers.fingerprint.commands import (
    DEFAULT_PASSWORD,
    INDEX_PAGES,
    Confirmation,
    Instruction,
    Reply,
    SystemParameters,
    decode_index_page,
    decode_reply,
    encode_command,
)
from drivers.fingerprint.errors import (
    ProtocolViolation,
    ResponseTimeout,
    WrongPasswordError,
    confirmation_error,
)
from drivers.fingerprint.protocol import (
    DEFAULT_ADDRESS,
    MAX_TRANSFER,
    DataAssembler,
    Packet,
    PacketKind,
    PacketParser,
    ProtocolError,
    data_packets,
    encode,
)
from drivers.interfaces import DeviceError, Health, HealthState
from drivers.serial_link import SerialLink

log = logging.getLogger(__name__)

DEFAULT_RESPONSE_TIMEOUT_S = 2.0  # well above the slowest command (a full-library Search)
# Consecutive unanswered or garbled exchanges after which the sensor counts as failed.
FAILED_AFTER_ERRORS = 3
# Before repeating a command that timed out, wait until the line has been silent this long, so a
# late answer to the first attempt cannot be taken for the answer to the second.
_QUIET_S = 0.2
# RegModel replaces both character buffers with its result; repeating it would not be the same
# operation, so it is never retried.
_NOT_REPEATABLE = frozenset({Instruction.REG_MODEL})
_ACK = frozenset({PacketKind.ACK})
_DATA = frozenset({PacketKind.DATA, PacketKind.END_OF_DATA})

T = TypeVar("T")


@dataclass(frozen=True)
class SearchHit:
    slot: int
    score: int


class R30xClient:
    def __init__(
        self,
        link: SerialLink,
        address: int = DEFAULT_ADDRESS,
        password: int = DEFAULT_PASSWORD,
        *,
        response_timeout_s: float = DEFAULT_RESPONSE_TIMEOUT_S,
        probe_backoff: Backoff | None = None,
    ) -> None:
        if not 0 <= address <= 0xFFFFFFFF or not 0 <= password <= 0xFFFFFFFF:
            raise ValueError("address and password are 32-bit unsigned numbers")
        self.link = link
        self.address = address
        self._password = password
        self.response_timeout_s = response_timeout_s
        self._parser = PacketParser()
        self._inbox: deque[Packet] = deque()
        self._lock = threading.RLock()
        self._session_port: Any = None
        self.parameters: SystemParameters | None = None
        self._errors_in_row = 0
        self._fault: Health | None = None
        self._probe_backoff = probe_backoff or Backoff(1.0, 30.0)
        self._next_probe = 0.0
        self.foreign_packets = 0  # well-formed packets from another module address
        self._dropped_reported = 0

    @property
    def name(self) -> str:
        return self.link.name

    @property
    def dropped_bytes(self) -> int:
        """Bytes discarded as line noise or stale data since the client was made."""
        return self._parser.dropped_bytes

    # --- session and health ----------------------------------------------------------------------

    def connect(self) -> SystemParameters:
        """Open the port and establish the session now instead of at the first command."""
        with self._lock:
            self._tracked(self._ensure_session)
            assert self.parameters is not None
            return self.parameters

    def health(self) -> Health:
        # The engine asks for health before every transaction and will not start one while the
        # sensor is failed, so health itself must notice recovery: reopen a vanished port and, while
        # there is no session, try to establish one (rate-limited, it waits for the module).
        if self._lock.acquire(blocking=False):
            try:
                self._probe()
            finally:
                self._lock.release()
        link_health = self.link.health()
        if link_health.state is not HealthState.OK:
            return link_health
        if self._fault is not None:
            return self._fault
        if self._session_port is None:
            return Health(HealthState.DEGRADED, "session not established yet")
        return Health.ok()

    def close(self) -> None:
        with self._lock:
            self._session_port = None
            self.link.close()

    # --- commands --------------------------------------------------------------------------------

    def verify_password(self) -> None:
        """VfyPwd; :class:`WrongPasswordError` when the module has another password."""
        self._run(Instruction.VFY_PWD, self._password)

    def read_system_parameters(self) -> SystemParameters:
        return self._parameters(self._run(Instruction.READ_SYS_PARA))

    def gen_img(self) -> bool:
        """Capture a finger image; ``False`` when there is no finger on the sensor."""
        reply = self._run(Instruction.GEN_IMG, accept={Confirmation.NO_FINGER})
        return reply.ok

    def img2tz(self, buffer: int) -> None:
        """Extract the characteristics of the captured image into character buffer 1 or 2."""
        self._run(Instruction.IMG2TZ, buffer)

    def match(self) -> int:
        """Compare buffers 1 and 2. A module-level "no match" is score 0: its own threshold (the
        security level) is a floor under whatever threshold the caller applies."""
        reply = self._run(Instruction.MATCH, accept={Confirmation.NO_MATCH})
        return int(reply.fields[0]) if reply.ok else 0

    def search(self, buffer: int, first_slot: int, count: int) -> SearchHit | None:
        reply = self._run(Instruction.SEARCH, buffer, first_slot, count, accept={Confirmation.NOT_FOUND})
        if not reply.ok:
            return None
        slot, score = reply.fields
        return SearchHit(int(slot), int(score))

    def reg_model(self) -> None:
        """Merge buffers 1 and 2 into a template (left in both); :class:`MergeError` if they differ."""
        self._run(Instruction.REG_MODEL)

    def store(self, buffer: int, slot: int) -> None:
        self._run(Instruction.STORE, buffer, slot)

    def load_char(self, buffer: int, slot: int) -> None:
        self._run(Instruction.LOAD_CHAR, buffer, slot)

    def up_char(self, buffer: int) -> bytes:
        """The characteristics in ``buffer``, sent by the module as data packets."""
        return self._transfer(Instruction.UP_CHAR, buffer)

    def down_char(self, buffer: int, data: bytes) -> None:
        """Send ``data`` (e.g. a reference template) into ``buffer``."""
        if not 0 < len(data) <= MAX_TRANSFER:
            raise ValueError(f"characteristics must be 1..{MAX_TRANSFER} bytes")
        self._transfer(Instruction.DOWN_CHAR, buffer, outgoing=data)

    def delete_char(self, first_slot: int, count: int = 1) -> None:
        self._run(Instruction.DELETE_CHAR, first_slot, count)

    def empty(self) -> None:
        self._run(Instruction.EMPTY)

    def template_count(self) -> int:
        return int(self._run(Instruction.TEMPLATE_NUM).fields[0])

    def read_index_table(self, page: int) -> frozenset[int]:
        """The used template slots of one index page (256 slots each)."""
        if not 0 <= page < INDEX_PAGES:
            raise ValueError(f"index page must be 0..{INDEX_PAGES - 1}")
        bitmap = self._run(Instruction.READ_INDEX_TABLE, page).fields[0]
        assert isinstance(bitmap, bytes)
        return decode_index_page(page, bitmap)

    # --- exchanges -------------------------------------------------------------------------------

    def _run(
        self, instruction: Instruction, *parameters: int, accept: set[Confirmation] | None = None
    ) -> Reply:
        reply, _ = self._command(instruction, parameters, accept or set())
        return reply

    def _transfer(self, instruction: Instruction, *parameters: int, outgoing: bytes | None = None) -> bytes:
        _, data = self._command(instruction, parameters, set(), outgoing=outgoing, incoming=outgoing is None)
        return data

    def _command(
        self,
        instruction: Instruction,
        parameters: tuple[int, ...],
        accept: set[Confirmation],
        *,
        outgoing: bytes | None = None,
        incoming: bool = False,
    ) -> tuple[Reply, bytes]:
        def attempt() -> tuple[Reply, bytes]:
            self._ensure_session()
            return self._exchange(instruction, parameters, accept, outgoing, incoming)

        with self._lock:
            try:
                return self._tracked(attempt)
            except ResponseTimeout:
                if instruction in _NOT_REPEATABLE:
                    raise
                log.warning("%s: no answer to %s; trying once more", self.name, instruction.name)
                self._wait_quiet()
                return self._tracked(attempt)

    def _tracked(self, call: Callable[[], T]) -> T:
        """Run ``call`` and keep the health bookkeeping in step with its outcome.

        Refused commands are answers and leave health alone; silence, garbage and a rejected
        password end the session, so the next use verifies the password again (the module may
        have restarted in between).
        """
        try:
            result = call()
        except (ResponseTimeout, ProtocolViolation, WrongPasswordError) as exc:
            self._session_port = None
            self._errors_in_row += 1
            failed = isinstance(exc, WrongPasswordError) or self._errors_in_row >= FAILED_AFTER_ERRORS
            self._fault = Health(HealthState.FAILED if failed else HealthState.DEGRADED, exc.reason)
            raise
        self._errors_in_row = 0
        self._fault = None
        self._report_noise()
        return result

    def _probe(self) -> None:
        try:
            self.link.ensure_open()
            if self._session_port is not None or time.monotonic() < self._next_probe:
                return
            self._tracked(self._ensure_session)
            self._probe_backoff.reset()
        except DeviceError:
            if self.link.is_open:
                self._next_probe = time.monotonic() + self._probe_backoff.next_delay()

    def _ensure_session(self) -> None:
        port = self.link.ensure_open()
        if port is self._session_port:
            return
        self._session_port = None
        self._exchange(Instruction.VFY_PWD, (self._password,), set(), None, False)
        reply, _ = self._exchange(Instruction.READ_SYS_PARA, (), set(), None, False)
        self.parameters = self._parameters(reply)
        self._session_port = port
        log.info(
            "%s: session established (capacity %d, packet size %d)",
            self.name,
            self.parameters.capacity,
            self.parameters.packet_size,
        )

    def _exchange(
        self,
        instruction: Instruction,
        parameters: tuple[int, ...],
        accept: set[Confirmation],
        outgoing: bytes | None,
        incoming: bool,
    ) -> tuple[Reply, bytes]:
        # Whatever is still buffered belongs to an earlier exchange and must not be read as the reply.
        self._inbox.clear()
        self._parser.reset()
        self.link.reset_input()
        self._send(Packet(PacketKind.COMMAND, encode_command(instruction, *parameters), self.address))
        deadline = time.monotonic() + self.response_timeout_s
        packet = self._receive(_ACK, instruction, deadline)
        try:
            reply = decode_reply(instruction, packet.payload)
        except ProtocolError as exc:
            raise ProtocolViolation(self.name, f"{instruction.name}: {exc}") from None
        if not reply.ok:
            if reply.code in accept:
                return reply, b""
            raise confirmation_error(self.name, instruction, reply.code)
        if outgoing is not None:
            assert self.parameters is not None  # a session exists before any data transfer
            for data_packet in data_packets(outgoing, self.parameters.packet_size, self.address):
                self._send(data_packet)
            return reply, b""
        if not incoming:
            return reply, b""
        assembler = DataAssembler()
        while True:
            # Each packet gets the full timeout: a long transfer is slow, not stuck.
            packet = self._receive(_DATA, instruction, time.monotonic() + self.response_timeout_s)
            try:
                data = assembler.add(packet)
            except ProtocolError as exc:
                raise ProtocolViolation(self.name, f"{instruction.name}: {exc}") from None
            if data is not None:
                return reply, data

    def _parameters(self, reply: Reply) -> SystemParameters:
        try:
            return SystemParameters.decode_fields(reply.fields)
        except ProtocolError as exc:
            raise ProtocolViolation(self.name, f"READ_SYS_PARA: {exc}") from None

    def _send(self, packet: Packet) -> None:
        self.link.write(encode(packet))

    def _receive(self, kinds: frozenset[PacketKind], instruction: Instruction, deadline: float) -> Packet:
        while not self._inbox:
            if time.monotonic() >= deadline:
                raise ResponseTimeout(
                    self.name,
                    f"no answer to {instruction.name} within {self.response_timeout_s:.1f} s "
                    "(check power, port, baud rate and address)",
                )
            chunk = self.link.read_available()
            # A read that came back empty waited the link's timeout: the module went quiet.
            for packet in self._parser.feed(chunk) if chunk else self._parser.flush():
                if packet.address == self.address:
                    self._inbox.append(packet)
                else:
                    self.foreign_packets += 1
        packet = self._inbox.popleft()
        if packet.kind not in kinds:
            raise ProtocolViolation(self.name, f"{instruction.name}: unexpected {packet.kind.name} packet")
        return packet

    def _wait_quiet(self) -> None:
        quiet_since = time.monotonic()
        give_up = quiet_since + self.response_timeout_s
        while (now := time.monotonic()) - quiet_since < _QUIET_S and now < give_up:
            try:
                if self.link.read_available():
                    quiet_since = time.monotonic()
            except DeviceError:
                return  # the retry will meet the same fault and report it

    def _report_noise(self) -> None:
        dropped = self.dropped_bytes
        if dropped != self._dropped_reported:
            log.warning(
                "%s: so far %d byte(s) of line noise or stale data dropped, %d false frame start(s), "
                "%d packet(s) for other addresses",
                self.name,
                dropped,
                self._parser.rejected_frames,
                self.foreign_packets,
            )
            self._dropped_reported = dropped
