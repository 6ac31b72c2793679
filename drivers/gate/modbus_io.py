"""Backend 2: an RS-485 Modbus RTU relay/IO module (coils are relays, discrete inputs are sensors).

pymodbus's serial RTU client does the transactions; the port underneath is a :class:`SerialLink`,
so a vanished USB-RS485 adapter is reopened with the project's jittered backoff. A thread polls the
discrete inputs (default every 50 ms) and, every few polls, the coils. Every coil write is read back
before it counts; a coil found changed behind our back (a module that rebooted) is rewritten.

Loss of communication: after ``failures_to_fail`` failed transactions in a row the port reports
FAILED, stops delivering inputs (so no events), refuses commands, and retries with backoff. When
the module answers again, the safe state (entry locked, exit free) is applied before anything
else; only then do inputs flow and commands work again.

A dead link cannot be commanded. The module itself must therefore fail safe on its own: use its
communication watchdog (many boards can drop their relays after N seconds without a request) or
wire the locks so that a de-energised relay means "entry locked, exit free" (the default lock
semantics of ``channels``), and hard-wire the fire alarm to cut lock power independently of any
software.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsResponse, ReadDiscreteInputsResponse, WriteSingleCoilResponse

from common.backoff import Backoff
from drivers.gate.channels import ChannelMap, Input, Output
from drivers.gate.gate_io import GateIO, PortListener
from drivers.gate.modbus_rtu import FrameStatus, RtuCodec
from drivers.gate.options import ModbusGateSection
from drivers.interfaces import DeviceError, Health, HealthState
from drivers.serial_link import SerialLink

log = logging.getLogger(__name__)


class _LinkedClient(ModbusSerialClient):
    """pymodbus's RTU client on a SerialLink: the link owns the port, its reopening and backoff."""

    def __init__(self, link: SerialLink, **kwargs: Any) -> None:
        super().__init__(link.port, **kwargs)
        self.link = link

    def connect(self) -> bool:
        if self.socket is None:
            try:
                self.socket = self.link.ensure_open()
            except DeviceError:
                return False
        return True

    def close(self) -> None:
        # pymodbus closes after an I/O error; the port is dropped through the link instead, which
        # also schedules the reconnect.
        self.socket = None


class ModbusPort:
    def __init__(
        self,
        channels: ChannelMap,
        link: SerialLink,
        *,
        unit: int = 1,
        poll_interval_s: float = 0.05,
        response_timeout_s: float = 0.2,
        failures_to_fail: int = 3,
        coil_check_every: int = 10,
        local_echo: bool = False,
        serial_settings: Mapping[str, Any] | None = None,
        backoff: Backoff | None = None,
        name: str = "gate",
    ) -> None:
        self.name = name
        self.channels = channels
        self.unit = unit
        self.poll_interval_s = poll_interval_s
        self.failures_to_fail = failures_to_fail
        self.coil_check_every = coil_check_every
        self._link = link
        self._client = _LinkedClient(
            link,
            baudrate=link.baudrate,
            timeout=response_timeout_s,
            retries=0,  # failures are counted here, one per transaction
            handle_local_echo=local_echo,
            trace_packet=self._trace,
            name=name,
            **dict(serial_settings or {}),
        )
        self._codec = RtuCodec(requests=False)
        self._backoff = backoff or Backoff(0.2, 5.0)
        self._io = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: PortListener | None = None
        self._commanded: dict[Output, bool] = {}
        self._confirmed: dict[Output, bool] = {}
        self._lost = True  # until the first contact: the module's state is unknown
        self._restoring = False
        self._lost_unreported = False
        self._closed = False
        self._consecutive_failures = 0
        self._last_error = "no contact yet"
        self._polls = 0
        self.transactions = 0
        self.failures = 0
        self.bad_frames = 0
        self.restores = 0

    # --- IoPort ----------------------------------------------------------------------------------

    def start(self, listener: PortListener) -> None:
        """First poll in the caller's thread (a built gate knows at once whether it can talk), then
        the polling thread."""
        self._listener = listener
        delay = self._guarded_cycle()
        self._thread = threading.Thread(
            target=self._run, args=(delay,), name=f"{self.name}-poll", daemon=True
        )
        self._thread.start()

    def write_output(self, output: Output, raw: bool) -> None:
        with self._io:
            if self._closed or (self._lost and not self._restoring):
                raise DeviceError(self.name, f"cannot set {output}: no link to the IO module")
            self._write_confirmed(output, raw)

    def output_state(self, output: Output) -> bool:
        if self._lost and not self._restoring:
            raise DeviceError(self.name, f"{output} unknown: no link to the IO module")
        try:
            return self._confirmed[output]
        except KeyError:
            raise DeviceError(self.name, f"{output} not confirmed yet") from None

    def health(self) -> Health:
        if self._closed:
            return Health.failed("closed")
        if self._lost:
            if self._consecutive_failures >= self.failures_to_fail:
                return Health.failed(f"no link to the IO module: {self._last_error}")
            return Health(HealthState.DEGRADED, "connecting to the IO module")
        if self._consecutive_failures:
            return Health(HealthState.DEGRADED, f"{self._consecutive_failures} failed transaction(s)")
        return Health.ok()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        with self._io:
            self._closed = True
            self._link.close()
            self._client.socket = None

    # --- polling ---------------------------------------------------------------------------------

    def _run(self, delay: float) -> None:
        while not self._stop.wait(delay):
            started = time.monotonic()
            delay = max(0.0, self._guarded_cycle() - (time.monotonic() - started))

    def _guarded_cycle(self) -> float:
        try:
            return self._cycle()
        except Exception:
            # A dead poll thread would freeze the inputs while health still said OK.
            log.exception("%s: poll cycle failed", self.name)
            return self._backoff.next_delay()

    def _cycle(self) -> float:
        """One poll and what follows from it; returns how long to wait before the next."""
        listener = self._listener
        assert listener is not None
        try:
            raw = self._poll()
            if self._lost:
                self._restore(listener, raw)
        except DeviceError:
            if self._lost_unreported:
                self._lost_unreported = False
                listener.link_lost()
            return self._backoff.next_delay() if self._lost else self.poll_interval_s
        listener.inputs_changed(raw)
        return self.poll_interval_s

    def _poll(self) -> dict[Input, bool]:
        with self._io:
            if self._closed:
                raise DeviceError(self.name, "closed")
            low, count = _span(self.channels.inputs.values())
            response = self._transaction(
                "read inputs",
                lambda: self._client.read_discrete_inputs(low, count=count, device_id=self.unit),
                expect=ReadDiscreteInputsResponse,
                bits=count,
            )
            raw = {name: bool(response.bits[address - low]) for name, address in self.channels.inputs.items()}
            self._polls += 1
            if self._polls % self.coil_check_every == 0 and not self._lost:
                self._check_coils()
            return raw

    def _restore(self, listener: PortListener, raw: Mapping[Input, bool]) -> None:
        self._restoring = True
        try:
            listener.link_restored(raw)
        finally:
            self._restoring = False
        self._lost = False
        self._lost_unreported = False
        self._consecutive_failures = 0
        self._backoff.reset()
        self.restores += 1
        log.info("%s: IO module answering; safe state applied", self.name)

    def _check_coils(self) -> None:
        low, count = _span(self.channels.outputs.values())
        response = self._transaction(
            "read coils",
            lambda: self._client.read_coils(low, count=count, device_id=self.unit),
            expect=ReadCoilsResponse,
            bits=count,
        )
        for output, address in self.channels.outputs.items():
            actual = bool(response.bits[address - low])
            self._confirmed[output] = actual
            wanted = self._commanded.get(output)
            if wanted is not None and actual != wanted:
                log.warning("%s: %s changed behind our back; rewriting it", self.name, output)
                self._write_confirmed(output, wanted)

    # --- transactions ----------------------------------------------------------------------------

    def _write_confirmed(self, output: Output, raw: bool) -> None:
        address = self.channels.outputs[output]
        try:
            self._transaction(
                f"write {output}",
                lambda: self._client.write_coil(address, raw, device_id=self.unit),
                expect=WriteSingleCoilResponse,
            )
            response = self._transaction(
                f"read back {output}",
                lambda: self._client.read_coils(address, count=1, device_id=self.unit),
                expect=ReadCoilsResponse,
                bits=1,
            )
        except DeviceError:
            # The write may or may not have landed: the output's state is unknown until read again.
            self._confirmed.pop(output, None)
            raise
        actual = bool(response.bits[0])
        self._confirmed[output] = actual
        if actual != raw:
            raise DeviceError(self.name, f"{output} reads back {'on' if actual else 'off'} after the write")
        self._commanded[output] = raw

    def _transaction(
        self, what: str, call: Callable[[], ModbusPDU], *, expect: type[ModbusPDU], bits: int = 0
    ) -> ModbusPDU:
        """One request/response; any failure counts towards loss of communication.

        RTU frames carry no transaction id: a reply that arrives after its request timed out is read as
        the answer to the next request. So an answer that is not of the request's function and size
        is dropped with whatever else waits on the line and counted as a failure — never read as
        inputs or coil states (a late coil read-back taken for the beams could open a door).
        """
        self.transactions += 1
        try:
            self._link.ensure_open()
            response = call()
        except DeviceError as exc:
            raise self._failed(what, exc.reason) from None
        except ConnectionException as exc:
            raise self._failed(what, self._link.drop(exc).reason) from None
        except ModbusException as exc:
            raise self._failed(what, f"no valid answer ({type(exc).__name__})") from None
        except Exception as exc:
            # pyserial lets assorted errors (termios.error, TypeError on a racing close) escape
            # when the device vanishes mid-call: the port is as good as gone.
            raise self._failed(what, self._link.drop(exc).reason) from None
        if response.isError():
            raise self._failed(what, f"exception code {response.exception_code}")
        if not isinstance(response, expect) or len(getattr(response, "bits", ())) < bits:
            with contextlib.suppress(DeviceError):  # a vanished port is found by the next request
                self._link.reset_input()
            raise self._failed(what, f"answer to another request (function {response.function_code})")
        if not self._lost:
            # While lost only a completed restore counts as recovery: a module that answers polls
            # but refuses the safe state is still failed.
            self._consecutive_failures = 0
        return response

    def _failed(self, what: str, reason: str) -> DeviceError:
        self.failures += 1
        self._consecutive_failures += 1
        self._last_error = f"{what}: {reason}"
        if self._consecutive_failures == self.failures_to_fail and not self._lost:
            log.error("%s: communication lost (%s)", self.name, self._last_error)
            self._lost = True
            self._lost_unreported = True
            # A USB adapter that vanished and came back needs reopening; a healthy port loses nothing.
            self._link.close()
            self._client.socket = None
        return DeviceError(self.name, self._last_error)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending and self._codec.status(data)[0] is FrameStatus.INVALID:
            self.bad_frames += 1
        return data


def _span(addresses: Any) -> tuple[int, int]:
    values = list(addresses)
    return min(values), max(values) - min(values) + 1


def build(section: ModbusGateSection) -> GateIO:
    """The gate on a Modbus RTU relay/IO module (``backend = "modbus"``), started.

    ``port`` is the serial device (e.g. ``/dev/serial/by-id/usb-...-if00-port0``); ``baudrate``
    defaults to 9600. Options (``[devices.gate.options]``):

    - ``outputs``: coil address (0-based) per output: ``entry_lock``, ``exit_lock`` (required),
      ``lamp_green``, ``lamp_red``, ``buzzer``. Default: 0, 1, 2, 3, 4 in that order.
    - ``inputs``: discrete-input address (0-based) per input: ``entry_beam``, ``exit_beam``
      (required), ``entry_door_closed``, ``exit_door_closed``, ``lane_presence``, ``tailgate``,
      ``emergency_release``. Default: 0 to 6 in that order.
    - ``active_low``: names of channels whose condition is a 0 bit (normally-closed sensors).
    - ``entry_unlock_energised`` (default true) / ``exit_unlock_energised`` (default false): whether
      energising that door's relay unlocks it; the defaults make a dead module mean "entry locked,
      exit free".
    - ``forced_grace_s`` (1.0): a door opening this soon after it locked is not "forced".
    - ``unit`` (1): Modbus unit id; ``parity`` ("N"/"E"/"O"), ``bytesize`` (8), ``stopbits`` (1);
      ``local_echo`` (false): the adapter echoes what it sends (some 2-wire RS-485 adapters).
    - ``poll_interval_s`` (0.05): input poll period; a beam interruption shorter than this may be
      missed. ``response_timeout_s`` (0.2): wait for each reply.
    - ``failures_to_fail`` (3): failed transactions in a row that count as loss of communication.
    - ``coil_check_every`` (10): polls between coil read-backs that catch a rebooted module.
    - ``reconnect_initial_s`` (0.2) / ``reconnect_max_s`` (5.0): backoff while the module is lost.
    """
    options = section.options
    serial_settings = {"bytesize": options.bytesize, "parity": options.parity, "stopbits": options.stopbits}
    link = SerialLink(
        "gate",
        section.port,
        baudrate=section.baudrate,
        timeout_s=options.response_timeout_s,
        backoff=Backoff(options.reconnect_initial_s, options.reconnect_max_s),
        serial_options={**serial_settings, "exclusive": True, "write_timeout": options.response_timeout_s},
    )
    port = ModbusPort(
        options.channel_map(),
        link,
        unit=options.unit,
        poll_interval_s=options.poll_interval_s,
        response_timeout_s=options.response_timeout_s,
        failures_to_fail=options.failures_to_fail,
        coil_check_every=options.coil_check_every,
        local_echo=options.local_echo,
        serial_settings=serial_settings,
        backoff=Backoff(options.reconnect_initial_s, options.reconnect_max_s),
    )
    return GateIO(port, forced_grace_s=options.forced_grace_s).start()
