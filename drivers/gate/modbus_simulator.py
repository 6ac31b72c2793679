"""A Modbus RTU relay/IO module on a pty: coils are relays, discrete inputs are sensors.

It behaves like the cheap 8-channel RS-485 boards the real backend drives (function codes 1, 2, 5
and 15, exception replies for anything else), using the same framing code (``modbus_rtu``). Tests
and the whole-gate simulation drive it through a small control API; a simulated traveller reacts
to relays through :meth:`ModbusIoSimulator.on_coil_change`.

    python -m drivers simulate modbus-io --link PATH [--unit 1]
"""

from __future__ import annotations

import argparse
import logging
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
)

from drivers.gate.modbus_rtu import COIL_OFF, COIL_ON, RtuFrame, RtuStreamParser, build_frame
from drivers.gate.options import DEFAULT_COILS, DEFAULT_INPUTS
from drivers.pty_endpoint import PtyEndpoint

log = logging.getLogger(__name__)

BROADCAST = 0
# A request arrives in one burst over a pty; this much silence ends a partial frame (RTU's 3.5
# character gap, generously sized for a loaded test machine).
GAP_S = 0.01

CoilCallback = Callable[[int, bool], None]


class ModbusError(Exception):
    def __init__(self, code: ExcCodes) -> None:
        super().__init__(code.name)
        self.code = code


class ModbusIoSimulator:
    def __init__(
        self,
        link: Path | None = None,
        *,
        unit: int = 1,
        coils: int = 8,
        inputs: int = 8,
        coil_names: Mapping[str, int] = DEFAULT_COILS,
        input_names: Mapping[str, int] = DEFAULT_INPUTS,
        response_delay_s: float = 0.0,
    ) -> None:
        self.unit = unit
        self.response_delay_s = response_delay_s
        self.endpoint = PtyEndpoint(link)
        self._coil_names = dict(coil_names)
        self._input_names = dict(input_names)
        self._coils = [False] * coils
        self._inputs = [False] * inputs
        self._state = threading.Lock()
        self._io = threading.Lock()
        self._callbacks: list[CoilCallback] = []
        self._jammed: dict[int, bool] = {}
        self._parser = RtuStreamParser(requests=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._corrupt_next = False
        self._muted = False
        self.requests = 0
        self.replies = 0
        self.ignored = 0  # frames for another unit, or unanswered while muted

    # --- control API -----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self.endpoint.path

    @property
    def dropped_bytes(self) -> int:
        return self._parser.dropped_bytes

    def set_input(self, name_or_address: str | int, value: bool) -> None:
        """Set a discrete input's raw bit (the module sees levels; polarity is the driver's business)."""
        address = self._address(name_or_address, self._input_names, len(self._inputs))
        with self._state:
            self._inputs[address] = bool(value)

    def coil(self, name_or_address: str | int) -> bool:
        address = self._address(name_or_address, self._coil_names, len(self._coils))
        with self._state:
            return self._coils[address]

    def on_coil_change(self, callback: CoilCallback) -> None:
        """Call ``callback(address, value)`` after a coil changes, from the serving thread.

        Callbacks must return quickly (start a timer or a thread for anything that takes time):
        the master waits for the reply meanwhile.
        """
        self._callbacks.append(callback)

    def jam_coil(self, name_or_address: str | int, value: bool | None) -> None:
        """Make a coil ignore writes and stay at ``value`` (a module fault); ``None`` frees it."""
        address = self._address(name_or_address, self._coil_names, len(self._coils))
        with self._state:
            if value is None:
                self._jammed.pop(address, None)
            else:
                self._jammed[address] = value
                self._coils[address] = value

    def power_cycle(self) -> None:
        """The module reboots: every relay drops (jammed ones stay jammed)."""
        with self._state:
            self._coils = [self._jammed.get(address, False) for address in range(len(self._coils))]

    def corrupt_next_reply(self) -> None:
        """Send the next reply with a broken CRC, as line noise would."""
        self._corrupt_next = True

    def mute(self, muted: bool = True) -> None:
        """Stop answering while the port stays open: a dead module on a live RS-485 bus."""
        self._muted = muted

    def unplug(self) -> None:
        with self._io:
            self.endpoint.unplug()

    def replug(self) -> None:
        with self._io:
            self.endpoint.replug()
        self._parser.gap()

    def start(self) -> ModbusIoSimulator:
        self._stop.clear()
        self._thread = threading.Thread(target=self.serve, name="modbus-io-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.endpoint.close()

    # --- serving ---------------------------------------------------------------------------------

    def serve(self) -> None:
        """Answer requests until :meth:`stop`."""
        while not self._stop.is_set():
            with self._io:
                data = self._read()
            if data is None:
                self._stop.wait(GAP_S)  # unplugged: nothing to read until replugged
            elif not data:
                self._parser.gap()
            else:
                for frame in self._parser.feed(data):
                    self._answer(frame)

    def _read(self) -> bytes | None:
        if not self.endpoint.is_open:
            return None
        try:
            return self.endpoint.read(1024, timeout_s=GAP_S)
        except (OSError, ValueError):  # the fd was closed under select by an unplug
            return None

    def _answer(self, frame: RtuFrame) -> None:
        self.requests += 1
        if frame.unit not in (self.unit, BROADCAST) or self._muted:
            self.ignored += 1
            return
        try:
            reply, changed = self._execute(frame)
        except ModbusError as exc:
            reply, changed = ExceptionResponse(frame.pdu.function_code, exc.code), []
        for address, value in changed:
            for callback in list(self._callbacks):
                try:
                    callback(address, value)
                except Exception:  # a broken traveller script must not take the module down
                    log.exception("coil callback failed")
        if frame.unit == BROADCAST:
            return
        data = build_frame(reply, self.unit)
        if self._corrupt_next:
            self._corrupt_next = False
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if self.response_delay_s:
            time.sleep(self.response_delay_s)
        with self._io:
            if self.endpoint.is_open:
                try:
                    self.endpoint.write(data)
                    self.replies += 1
                except OSError:
                    log.debug("reply lost: the endpoint went away")

    def _execute(self, frame: RtuFrame) -> tuple[ModbusPDU, list[tuple[int, bool]]]:
        pdu = frame.pdu
        if isinstance(pdu, ReadDiscreteInputsRequest):
            return ReadDiscreteInputsResponse(bits=self._read_bits(self._inputs, pdu)), []
        if isinstance(pdu, ReadCoilsRequest):
            return ReadCoilsResponse(bits=self._read_bits(self._coils, pdu)), []
        if isinstance(pdu, WriteSingleCoilRequest):
            (raw_value,) = struct.unpack(">H", frame.raw[4:6])
            if raw_value not in (COIL_ON, COIL_OFF):
                raise ModbusError(ExcCodes.ILLEGAL_VALUE)
            changed = self._write_bits(pdu.address, [raw_value == COIL_ON])
            return WriteSingleCoilResponse(address=pdu.address, bits=[raw_value == COIL_ON]), changed
        if isinstance(pdu, WriteMultipleCoilsRequest):
            if pdu.byte_count != (pdu.count + 7) // 8 or pdu.data_byte_count != pdu.byte_count:
                raise ModbusError(ExcCodes.ILLEGAL_VALUE)
            changed = self._write_bits(pdu.address, list(pdu.bits)[: pdu.count])
            response = WriteMultipleCoilsResponse(address=pdu.address, count=pdu.count)
            return response, changed
        raise ModbusError(ExcCodes.ILLEGAL_FUNCTION)

    def _read_bits(self, table: list[bool], pdu: ModbusPDU) -> list[bool]:
        with self._state:
            if pdu.count < 1 or pdu.address + pdu.count > len(table):
                raise ModbusError(ExcCodes.ILLEGAL_ADDRESS)
            return table[pdu.address : pdu.address + pdu.count]

    def _write_bits(self, address: int, values: list[bool]) -> list[tuple[int, bool]]:
        with self._state:
            if not values or address + len(values) > len(self._coils):
                raise ModbusError(ExcCodes.ILLEGAL_ADDRESS)
            changed = []
            for offset, value in enumerate(values):
                coil = address + offset
                if coil not in self._jammed and self._coils[coil] != value:
                    self._coils[coil] = value
                    changed.append((coil, value))
        return changed

    @staticmethod
    def _address(name_or_address: str | int, names: Mapping[str, int], size: int) -> int:
        address = names[name_or_address] if isinstance(name_or_address, str) else name_or_address
        if not 0 <= address < size:
            raise ValueError(f"address {address} outside 0..{size - 1}")
        return address


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drivers simulate modbus-io",
        description="Serve a simulated Modbus RTU relay/IO module on a pty until SIGTERM.",
    )
    parser.add_argument("--link", type=Path, required=True, help="symlink to create for the pty")
    parser.add_argument("--unit", type=int, default=1, help="Modbus unit id (1-247)")
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=8)
    args = parser.parse_args(argv)
    if not 1 <= args.unit <= 247:
        parser.error("--unit must be 1-247")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    simulator = ModbusIoSimulator(args.link, unit=args.unit, coils=args.coils, inputs=args.inputs)
    simulator.on_coil_change(lambda address, on: print(f"coil {address} {'on' if on else 'off'}", flush=True))
    stopped = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(simulator.path, flush=True)
    simulator.start()
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        simulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
