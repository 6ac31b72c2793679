"""In-process simulators of every lane device, driven by one simulated world.

The :class:`SimulatedLane` is the physical scene in front of the kiosk: who stands there, what
they hold, where they walk. The devices read that scene through the same interfaces real
hardware implements. Waiting for something that will not happen advances the simulated clock
instead of sleeping, so timeouts cost nothing in a headless run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from common.clock import SimulatedClock
from drivers.chip.card import SimulatedPassport
from drivers.chip.errors import ReaderUnavailableError
from drivers.chip.inprocess import InProcessChipReader, InProcessTransport
from drivers.interfaces import (
    ChipAccessKey,
    ChipSession,
    DeviceError,
    DocumentRead,
    FingerprintResult,
    Frame,
    Health,
    HealthState,
    LaneEvent,
    Signal,
)

FRAME_PERIOD_S = 1 / 15
_BLANK = np.zeros((48, 64, 3), dtype=np.uint8)  # tiny: simulated frames carry their subject in meta
FRAME_ROWS, FRAME_COLS = 480, 640
# While still approaching the kiosk a traveller appears at this fraction of their size once there:
# too small for a capture (the pipeline says "come closer", or sees no face yet).
APPROACH_SCALE = 0.35
_BACKGROUND = 96  # grey


class SimulatedLane:
    def __init__(self, clock: SimulatedClock, device_delay_s: float = 0.0) -> None:
        self.clock = clock
        self.device_delay_s = device_delay_s
        self.lock = threading.RLock()
        self.traveller: Any = None
        self.presentations_left = 0
        self.frames_seen = 0
        self.occupants = 0
        self.events: deque[LaneEvent] = deque()
        # The chip reader's slot (set by SimulatedChipReader) and the passport chip each traveller
        # carries (set by whoever made the travellers; None: a document without a chip).
        self.chip_slot: InProcessTransport | None = None
        self.passport_of: Callable[[Any], SimulatedPassport | None] | None = None

    def arrive(self, traveller: Any) -> None:
        slot = self.chip_slot
        card = self.passport_of(traveller) if slot is not None and self.passport_of is not None else None
        with self.lock:
            self.traveller = traveller
            self.presentations_left = traveller.document_presentations
            self.frames_seen = 0
        # The passport lies on the document reader, whose antenna reads its chip: both at once.
        if slot is not None:
            if card is None:
                slot.remove()
            else:
                slot.insert(card)

    def leave(self) -> None:
        with self.lock:
            self.traveller = None
            self.presentations_left = 0
        if self.chip_slot is not None:
            self.chip_slot.remove()  # they take their passport with them

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def work(self) -> None:
        if self.device_delay_s:
            self.clock.advance(self.device_delay_s)


class _SimulatedDevice:
    name = "simulated"

    def __init__(self, lane: SimulatedLane) -> None:
        self.lane = lane
        self._health = Health.ok()

    def health(self) -> Health:
        return self._health

    def fail(self, reason: str) -> None:
        """Inject a fault (tests and training mode)."""
        self._health = Health(HealthState.FAILED, reason)

    def repair(self) -> None:
        self._health = Health.ok()

    def close(self) -> None:
        pass

    def _check(self) -> None:
        if self._health.state is HealthState.FAILED:
            raise DeviceError(self.name, self._health.reason)


class SimulatedDocumentReader(_SimulatedDevice):
    name = "document_reader"

    def read(self, timeout_s: float) -> DocumentRead | None:
        self._check()
        lane = self.lane
        with lane.lock:
            traveller = lane.traveller
            present = traveller is not None and lane.presentations_left > 0
            if present:
                lane.presentations_left -= 1
        if not present:
            # Wait outside the lock: a traveller arriving meanwhile must not block on the reader.
            lane.wait(timeout_s)
            return None
        lane.work()
        return DocumentRead(
            lines=traveller.mrz_lines, read_at=lane.clock.monotonic(), meta={"traveller": traveller.id}
        )


class LiveFaces(Protocol):
    """Where a camera with real pixels gets the photo of whoever stands in front of it."""

    def live_image(self, traveller: Any) -> np.ndarray: ...


def camera_view(photo: np.ndarray, settled: bool) -> np.ndarray:
    """A 640x480 RGB frame of the person in ``photo``, centred on a plain background.

    At the kiosk the photo is as large as the frame allows (an LFW face is then about 150 px);
    still approaching, :data:`APPROACH_SCALE` of that.
    """
    fit = min(FRAME_ROWS / photo.shape[0], FRAME_COLS / photo.shape[1])
    scale = fit * (1.0 if settled else APPROACH_SCALE)
    size = (max(1, int(photo.shape[1] * scale)), max(1, int(photo.shape[0] * scale)))
    resized = cv2.resize(photo, size, interpolation=cv2.INTER_LINEAR if scale >= 1 else cv2.INTER_AREA)
    rows, cols = resized.shape[:2]
    top, left = (FRAME_ROWS - rows) // 2, (FRAME_COLS - cols) // 2
    frame = np.full((FRAME_ROWS, FRAME_COLS, 3), _BACKGROUND, np.uint8)
    frame[top : top + rows, left : left + cols] = resized
    return frame


class SimulatedCamera(_SimulatedDevice):
    """Frames naming who is in view (``meta``); with ``faces``, also showing their real face."""

    name = "camera"

    def __init__(self, lane: SimulatedLane, faces: LiveFaces | None = None) -> None:
        super().__init__(lane)
        self.faces = faces
        self._sequence = 0

    def capture(self, timeout_s: float) -> Frame | None:
        self._check()
        lane = self.lane
        with lane.lock:
            traveller = lane.traveller
            present = traveller is not None and not traveller.walks_away
            meta: dict[str, Any] = {}
            if present:
                meta = {
                    "subject": traveller.face_id,
                    "settled": lane.frames_seen >= traveller.guidance_frames,
                }
                lane.frames_seen += 1
            self._sequence += 1
        # Frames arrive at the camera's rate when nobody is in view, and with real pixels (a face the
        # pipeline never accepts then runs into the capture timeout); a pixel-less frame of someone in
        # view comes at the software's own pace. Someone in view adds any configured device delay.
        if not present or self.faces is not None:
            lane.wait(FRAME_PERIOD_S)
        image = _BLANK
        if present:
            lane.work()
            if self.faces is not None:
                image = camera_view(self.faces.live_image(traveller), meta["settled"])
        return Frame(image=image, timestamp=lane.clock.monotonic(), sequence=self._sequence, meta=meta)


class SimulatedChipReader(InProcessChipReader):
    """The lane's chip reader: an in-process slot (the real APDU, access control and secure messaging
    code, no pcscd) holding the passport of the traveller at the gate. Waiting for a chip that is not
    there passes simulated time, like the other simulated devices."""

    name = "chip"

    def __init__(self, lane: SimulatedLane) -> None:
        super().__init__()
        self.lane = lane
        lane.chip_slot = self.slot
        self._fault: str | None = None

    def health(self) -> Health:
        return Health.failed(self._fault) if self._fault is not None else super().health()

    def fail(self, reason: str) -> None:
        """Inject a fault (tests and training mode): the reader is gone, as an unplugged one."""
        self._fault = reason

    def repair(self) -> None:
        self._fault = None

    def wait_for_card(self, timeout_s: float) -> bool:
        self._check()
        if self.slot.card is None:
            self.lane.wait(timeout_s)
        return self.slot.card is not None

    def read(self, key: ChipAccessKey, files: Sequence[str]) -> ChipSession:
        self._check()
        self.lane.work()
        return super().read(key, files)

    def _check(self) -> None:
        if self._fault is not None:
            raise ReaderUnavailableError(self._fault)


def fingerprint_template(finger_id: int) -> bytes:
    return b"SIMFP:" + str(finger_id).encode()


class SimulatedFingerprintSensor(_SimulatedDevice):
    name = "fingerprint"

    def verify(self, reference_template: bytes, timeout_s: float) -> FingerprintResult | None:
        self._check()
        lane = self.lane
        traveller = lane.traveller
        if traveller is None or traveller.walks_away:
            lane.wait(timeout_s)
            return None
        lane.work()
        matched = reference_template == fingerprint_template(traveller.finger_id)
        return FingerprintResult(matched=matched, score=180 if matched else 8)


class SimulatedGate(_SimulatedDevice):
    name = "gate"

    def __init__(self, lane: SimulatedLane) -> None:
        super().__init__(lane)
        self._entry = False
        self._exit = False
        self.signal = Signal.OFF
        self.interlock_violations = 0

    def set_entry_unlocked(self, unlocked: bool) -> None:
        self._check()
        with self.lane.lock:
            opening = unlocked and not self._entry
            self._entry = unlocked
            self._note_interlock()
            if opening:
                self._person_at_entry()

    def set_exit_unlocked(self, unlocked: bool) -> None:
        self._check()
        with self.lane.lock:
            opening = unlocked and not self._exit
            self._exit = unlocked
            self._note_interlock()
            if opening and self.lane.occupants:
                self.lane.occupants = 0
                self.lane.events.append(LaneEvent.PERSON_EXITED)

    def entry_unlocked(self) -> bool:
        self._check()
        return self._entry

    def exit_unlocked(self) -> bool:
        self._check()
        return self._exit

    def lane_occupied(self) -> bool:
        self._check()
        return self.lane.occupants > 0

    def set_signal(self, signal: Signal) -> None:
        self._check()
        self.signal = signal

    def wait_event(self, timeout_s: float) -> LaneEvent | None:
        self._check()
        with self.lane.lock:
            if self.lane.events:
                return self.lane.events.popleft()
        self.lane.wait(timeout_s)
        return None

    def _note_interlock(self) -> None:
        if self._entry and self._exit:
            self.interlock_violations += 1

    def _person_at_entry(self) -> None:
        lane = self.lane
        traveller = lane.traveller
        if traveller is None:
            return
        if lane.occupants:
            # Entry reopened with people inside (tailgating): they step back out.
            lane.occupants = 0
            lane.events.append(LaneEvent.PERSON_RETREATED)
        elif traveller.enters:
            lane.occupants = 2 if traveller.tailgated else 1
            lane.events.append(LaneEvent.PERSON_ENTERED)
            if traveller.tailgated:
                lane.events.append(LaneEvent.TAILGATING)
