"""Every serial device on its wire-protocol simulator, behind a pseudo-terminal, driven by the
simulated world: the whole-gate run exercises the real driver code, and only the hardware is missing.

The MRZ reader, the R30x fingerprint sensor and the Modbus RTU relay/IO module each serve their
real protocol on a pty; the kiosk's drivers open the ptys like serial ports. When the door relays
switch, a simulated traveller walks through the beams with real timing. The camera stays the
in-process simulated one (a camera has no serial protocol to exercise).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from config import Config, DevicesSection
from drivers.docreader.options import SerialReaderSection
from drivers.docreader.simulator import DocReaderSimulator
from drivers.fingerprint.options import R30xSection
from drivers.fingerprint.simulator import R30xSimulator, template_for
from drivers.gate.modbus_simulator import ModbusIoSimulator
from drivers.gate.options import DEFAULT_COILS, ModbusGateSection
from drivers.pty_endpoint import PtyEndpoint
from drivers.simulated.lane import SimulatedLane
from kiosk.simulation.population import SimulatedTraveller

# A beam interruption must outlast the IO module's poll interval to be seen, with room for a loaded
# machine that runs the poll late: a walking person blocks a beam for a few tenths of a second.
POLL_INTERVAL_S = 0.02
BEAM_PULSE_S = 0.25


class WireRig:
    def __init__(self, lane: SimulatedLane, directory: Path) -> None:
        self.lane = lane
        self.directory = directory
        self.reader_endpoint = PtyEndpoint(directory / "docreader")
        self.reader = DocReaderSimulator(self.reader_endpoint)
        self.sensor_endpoint = PtyEndpoint(directory / "fingerprint")
        self.sensor = R30xSimulator(self.sensor_endpoint)
        self.io = ModbusIoSimulator(directory / "gate-io")
        self.io.on_coil_change(self._relay_switched)
        self._occupants = 0
        # The module powers up with its relays off: entry locked, exit free (see _relay_switched).
        self._unlocked = {"entry": False, "exit": True}
        self.interlock_violations = 0
        self._walks: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.template_for = template_for

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> WireRig:
        self.reader.start()
        self.sensor.start()
        self.io.start()
        for door in ("entry_door_closed", "exit_door_closed"):
            self.io.set_input(door, True)
        return self

    def stop(self) -> None:
        self._finish_walks()
        for simulator in (self.reader, self.sensor, self.io):
            simulator.stop()
        for endpoint in (self.reader_endpoint, self.sensor_endpoint):
            endpoint.close()
        self.io.close()

    def configure(self, config: Config) -> Config:
        """``config`` with the reader, sensor and gate on this rig's ptys and lane-speed timeouts (the
        camera and the chip reader stay as configured)."""
        devices = DevicesSection(
            document_reader=SerialReaderSection(port=str(self.directory / "docreader")),
            chip=config.devices.chip,
            camera=config.devices.camera,
            fingerprint=R30xSection(port=str(self.directory / "fingerprint")),
            gate=ModbusGateSection(
                port=self.io.path,
                baudrate=115200,
                # A late answer is dropped and counted as a failure; on a loaded test machine the
                # simulator may be scheduled late, which on a real bus would be a broken module.
                options={"poll_interval_s": POLL_INTERVAL_S, "response_timeout_s": 1.0},
            ),
        )
        flow = config.flow.model_copy(
            update={
                "document_timeout_s": 2.0,
                "fingerprint_timeout_s": 3.0,
                "entry_timeout_s": 3.0,
                "passage_settle_s": 0.6,
                "exit_timeout_s": 3.0,
            }
        )
        return config.model_copy(update={"devices": devices, "flow": flow})

    # --- the traveller -------------------------------------------------------------------------------

    def arrive(self, traveller: SimulatedTraveller) -> None:
        self._finish_walks()
        self.lane.arrive(traveller)
        self.sensor.place_finger(traveller.finger_id)
        for _ in range(traveller.document_presentations):
            self.reader.present(traveller.mrz_lines)

    def leave(self) -> None:
        self._finish_walks()
        self.sensor.remove_finger()
        self.reader.remove()
        self.lane.leave()

    # --- physics -------------------------------------------------------------------------------------

    def _relay_switched(self, address: int, on: bool) -> None:
        # Default wiring: energising the entry relay unlocks the entry; the exit relay is
        # energised to LOCK (so a dead module frees the exit).
        if address == DEFAULT_COILS["entry_lock"]:
            self._unlocked["entry"] = on
        elif address == DEFAULT_COILS["exit_lock"]:
            self._unlocked["exit"] = not on
        else:
            return
        if all(self._unlocked.values()):
            self.interlock_violations += 1  # seen on the relays themselves, not in the driver
        if address == DEFAULT_COILS["entry_lock"] and on:
            self._walk(self._through_entry)
        elif address == DEFAULT_COILS["exit_lock"] and not on:
            self._walk(self._through_exit)

    def _walk(self, steps: Callable[[], None]) -> None:
        thread = threading.Thread(target=steps, name="traveller-walk", daemon=True)
        with self._lock:
            self._walks.append(thread)
        thread.start()

    def _finish_walks(self) -> None:
        with self._lock:
            walks, self._walks = self._walks, []
        for thread in walks:
            thread.join(5)

    def _cross(self, door: str, beam: str, *, inside_after: bool) -> None:
        io = self.io
        io.set_input(door, False)
        io.set_input(beam, True)
        time.sleep(BEAM_PULSE_S)
        io.set_input("lane_presence", inside_after)
        io.set_input(beam, False)
        time.sleep(BEAM_PULSE_S)
        io.set_input(door, True)

    def _through_entry(self) -> None:
        traveller = self.lane.traveller
        if traveller is None:
            return
        if self._occupants:
            # The entry reopened with people inside (tailgating): they step back out.
            self._cross("entry_door_closed", "entry_beam", inside_after=False)
            self._occupants = 0
        elif traveller.enters:
            self._cross("entry_door_closed", "entry_beam", inside_after=True)
            self._occupants = 1
            if traveller.tailgated:
                # The second person follows close behind, inside the passage settle window.
                self.io.set_input("tailgate", True)
                time.sleep(BEAM_PULSE_S)
                self.io.set_input("tailgate", False)
                self._occupants = 2

    def _through_exit(self) -> None:
        if self._occupants:
            self._cross("exit_door_closed", "exit_beam", inside_after=False)
            self._occupants = 0
