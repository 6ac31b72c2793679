"""The frame watchdog: restarts a silent camera, fails after repeated stalls, recovers, never hangs.

Camera hardware cannot be stalled on command in CI, so :class:`ScriptedCamera` stands in for it
behind the same FrameSource contract every real backend implements. Everything above it (threads,
health, restarts, sequence numbers) is the real watchdog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from common.backoff import Backoff
from drivers.camera.source import SourceFrame
from drivers.camera.watchdog import WatchdogCamera
from drivers.interfaces import Camera, DeviceError, HealthState

# Wide enough that a loaded machine's scheduling delay is never mistaken for a stall.
STALL_S = 1.0


class ScriptedCamera:
    """Produces frames until told to stop; a reopen heals it unless ``heal_on_reopen`` is off."""

    description = "scripted test camera"

    def __init__(self, fps: float = 200.0) -> None:
        self.period = 1 / fps
        self.producing = threading.Event()
        self.heal_on_reopen = True
        self.fail_open = False
        self.raise_once: Exception | None = None
        self.wedged = threading.Event()  # set: read() blocks, ignoring its timeout, like a hung driver
        self.unwedge = threading.Event()
        self.opens = 0
        self.closes = 0
        self.open_now = False
        self.reading_threads: set[str] = set()

    def open(self) -> None:
        if self.fail_open:
            raise DeviceError(self.description, "camera absent")
        self.opens += 1
        self.open_now = True
        if self.heal_on_reopen:
            self.producing.set()

    def read(self, timeout_s: float) -> SourceFrame | None:
        assert self.open_now, "read from a closed camera"
        self.reading_threads.add(threading.current_thread().name)
        if self.wedged.is_set():
            self.unwedge.wait()
        if self.raise_once is not None:
            exc, self.raise_once = self.raise_once, None
            raise exc
        if not self.producing.is_set():
            time.sleep(timeout_s)
            return None
        time.sleep(self.period)
        return SourceFrame(image=np.full((4, 6, 3), self.opens, np.uint8), meta={"open": self.opens})

    def close(self) -> None:
        self.closes += 1
        self.open_now = False


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def source() -> ScriptedCamera:
    return ScriptedCamera()


@pytest.fixture
def camera(source: ScriptedCamera) -> Iterator[WatchdogCamera]:
    cam = WatchdogCamera(
        source,
        name="cam-under-test",
        stall_timeout_s=STALL_S,
        startup_timeout_s=STALL_S,
        max_restarts=3,
        restart_window_s=30.0,
        hang_grace_s=0.4,
        backoff=Backoff(0.01, 0.03),
    )
    cam.start()
    yield cam
    source.unwedge.set()
    cam.stop()


@pytest.mark.timeout(30)
def test_it_is_a_camera_delivering_new_frames_in_sequence(camera: WatchdogCamera) -> None:
    assert isinstance(camera, Camera)
    first = camera.capture(2.0)
    assert first is not None
    second = camera.capture(2.0)
    assert second is not None
    assert second.sequence > first.sequence
    assert second.timestamp >= first.timestamp
    assert second.image.shape == (4, 6, 3) and second.image.dtype == np.uint8
    assert camera.health().state is HealthState.OK


@pytest.mark.timeout(30)
def test_capture_times_out_with_none_when_no_new_frame_comes(
    camera: WatchdogCamera, source: ScriptedCamera
) -> None:
    assert camera.capture(2.0) is not None
    source.producing.clear()
    while camera.capture(0.3) is not None:  # drain the frame that was in flight when production stopped
        pass
    started = time.monotonic()
    assert camera.capture(0.1) is None
    assert time.monotonic() - started >= 0.09  # it waited its timeout (an upper bound measures only load)
    assert camera.health().state is HealthState.OK  # shorter than the stall timeout: no verdict yet


@pytest.mark.timeout(30)
def test_a_stall_restarts_the_camera_and_frames_flow_again(
    camera: WatchdogCamera, source: ScriptedCamera
) -> None:
    before = camera.capture(2.0)
    assert before is not None
    source.producing.clear()
    wait_until(lambda: camera.restarts >= 1)
    after = camera.capture(3.0)
    if after is not None and after.meta["open"] == 1:  # already in flight when the camera went quiet
        after = camera.capture(3.0)
    assert after is not None
    assert after.sequence > before.sequence
    assert after.meta["open"] == 2  # delivered by the reopened camera
    assert source.closes >= 1  # closed before it was opened again
    wait_until(lambda: camera.health().state is HealthState.OK)
    assert camera.restarts == 1


@pytest.mark.timeout(30)
def test_repeated_stalls_fail_the_camera_and_a_frame_recovers_it(
    camera: WatchdogCamera, source: ScriptedCamera
) -> None:
    assert camera.capture(2.0) is not None
    source.heal_on_reopen = False
    source.producing.clear()
    states: list[HealthState] = []

    def failed() -> bool:
        states.append(camera.health().state)
        return states[-1] is HealthState.FAILED

    wait_until(failed)
    assert HealthState.DEGRADED in states  # restarting came before failing
    reason = camera.health().reason
    assert "3 restarts" in reason and "no first frame" in reason
    with pytest.raises(DeviceError) as raised:
        camera.capture(0.5)
    assert raised.value.device == "cam-under-test"
    # The supervisor keeps trying: the first frame after the camera heals makes it OK again.
    source.producing.set()
    wait_until(lambda: camera.health().state is HealthState.OK)
    assert camera.capture(2.0) is not None


@pytest.mark.timeout(30)
def test_a_camera_that_cannot_be_opened_fails_then_recovers_when_it_is_back(source: ScriptedCamera) -> None:
    source.fail_open = True
    cam = WatchdogCamera(source, stall_timeout_s=STALL_S, max_restarts=3, backoff=Backoff(0.01, 0.02))
    cam.start()
    try:
        wait_until(lambda: cam.health().state is HealthState.FAILED)
        assert "camera absent" in cam.health().reason
        source.fail_open = False
        wait_until(lambda: cam.health().state is HealthState.OK)
        assert cam.capture(2.0) is not None
    finally:
        cam.stop()


@pytest.mark.timeout(30)
def test_an_exception_from_the_camera_library_restarts_it(
    camera: WatchdogCamera, source: ScriptedCamera
) -> None:
    assert camera.capture(2.0) is not None
    source.raise_once = RuntimeError("frontend has timed out")
    wait_until(lambda: camera.restarts >= 1)
    assert camera.capture(2.0) is not None
    wait_until(lambda: camera.health().state is HealthState.OK)


@pytest.mark.timeout(30)
def test_a_hung_capture_call_fails_the_camera_without_a_second_reader(
    camera: WatchdogCamera, source: ScriptedCamera
) -> None:
    assert camera.capture(2.0) is not None
    source.wedged.set()
    wait_until(lambda: camera.health().state is HealthState.FAILED)
    assert "has not returned" in camera.health().reason
    assert source.opens == 1  # never opened again while the hung handle holds the camera
    assert camera.preview() is None  # the last frame is stale: the UI must not show it as live
    source.wedged.clear()
    source.unwedge.set()
    wait_until(lambda: camera.health().state is HealthState.OK)
    assert source.opens == 2


@pytest.mark.timeout(30)
def test_preview_never_blocks_and_keeps_up(camera: WatchdogCamera) -> None:
    assert camera.capture(2.0) is not None
    # While a consumer holds the frame lock (a capture in progress), the UI thread still gets a picture:
    # preview must not wait for that lock. A blocking preview would hang here until the test timeout.
    with camera._cond:
        previewed: list[object] = []
        ui_thread = threading.Thread(target=lambda: previewed.append(camera.preview()))
        ui_thread.start()
        ui_thread.join(10.0)
        assert not ui_thread.is_alive() and previewed[0] is not None
    seen: set[int] = set()

    def fresh_frames() -> bool:
        frame = camera.preview()
        if frame is not None:
            seen.add(frame.sequence)
        return len(seen) > 10

    wait_until(fresh_frames, timeout_s=20.0)


@pytest.mark.timeout(30)
def test_independent_cursors_and_capture_skip_to_the_newest_frame(camera: WatchdogCamera) -> None:
    first = camera.capture(2.0)
    assert first is not None
    wait_until(lambda: (latest := camera.preview()) is not None and latest.sequence > first.sequence + 1)
    newest = camera.capture(2.0)
    assert newest is not None and newest.sequence > first.sequence + 1
    other = camera.next_frame(0, 1.0)  # another consumer with its own cursor still gets a frame
    assert other is not None and other.sequence >= newest.sequence


@pytest.mark.timeout(30)
def test_stop_releases_the_camera_and_start_resumes(camera: WatchdogCamera, source: ScriptedCamera) -> None:
    assert camera.capture(2.0) is not None
    camera.stop()
    assert not source.open_now
    assert camera.health().state is HealthState.DEGRADED
    with pytest.raises(DeviceError, match="not running"):
        camera.capture(0.1)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("cam-under-test")]
    assert alive == []
    camera.start()
    assert camera.capture(2.0) is not None
    assert source.opens == 2


@pytest.mark.timeout(30)
def test_a_consumer_waiting_in_capture_is_told_when_the_camera_fails(
    camera: WatchdogCamera, source: ScriptedCamera
) -> None:
    assert camera.capture(2.0) is not None
    source.heal_on_reopen = False
    source.producing.clear()
    with pytest.raises(DeviceError):  # told by the failure, long before the 20 s capture and the test timeout
        while True:  # the engine's loop: short captures until a frame or an error
            camera.capture(20.0)


def test_invalid_settings_are_refused(source: ScriptedCamera) -> None:
    with pytest.raises(ValueError):
        WatchdogCamera(source, stall_timeout_s=0)
    with pytest.raises(ValueError):
        WatchdogCamera(source, max_restarts=0)
