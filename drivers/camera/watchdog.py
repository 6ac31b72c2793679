"""The frame watchdog every camera backend runs behind.

Cameras do not fail loudly: a Pi camera's "frontend has timed out", a USB webcam that browns out
or a capture call that never returns all look the same from above — frames simply stop. So a
reader thread keeps the latest frame, a supervisor thread watches the time since the last one,
and a camera silent for longer than ``stall_timeout_s`` is restarted (closed and opened again,
with jittered backoff between attempts). ``max_restarts`` restarts within ``restart_window_s``
mark the camera FAILED with the reason, so the engine fails safe and the operator is told; the
supervisor keeps trying, and the first frame that arrives makes it OK again.

Each open of the camera gets its own reader thread, which alone opens, reads and closes the
backend: camera libraries are not safe to close from one thread while another reads. A reader
that does not come back after it was asked to stop is waited for, never duplicated: opening the
camera a second time while a hung handle holds it would fail anyway, and would leak a thread per
stall.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque

from common.backoff import Backoff
from drivers.camera.source import FrameSource, SourceFrame
from drivers.interfaces import DeviceError, Frame, Health, HealthState

log = logging.getLogger(__name__)

# How long one backend read may wait before the reader checks whether it should stop.
READ_POLL_S = 0.25


class WatchdogCamera:
    """A :class:`~drivers.interfaces.Camera` on top of a :class:`FrameSource`, with restarts and health."""

    def __init__(
        self,
        source: FrameSource,
        *,
        name: str = "camera",
        stall_timeout_s: float = 2.0,
        startup_timeout_s: float = 5.0,
        max_restarts: int = 3,
        restart_window_s: float = 60.0,
        hang_grace_s: float = 15.0,
        backoff: Backoff | None = None,
    ) -> None:
        if stall_timeout_s <= 0 or startup_timeout_s <= 0 or hang_grace_s <= 0 or restart_window_s <= 0:
            raise ValueError("timeouts and the restart window must be positive")
        if max_restarts < 1:
            raise ValueError("max_restarts must be at least 1")
        self.name = name
        self.source = source
        self.stall_timeout_s = stall_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.hang_grace_s = hang_grace_s
        self._backoff = backoff or Backoff(0.5, 10.0)
        self._poll_s = min(READ_POLL_S, stall_timeout_s / 4)
        self._cond = threading.Condition()
        self._health = Health(HealthState.DEGRADED, "not started")
        self._latest: Frame | None = None
        self._sequence = 0
        self._returned = 0  # the last sequence capture() handed out
        self._generation = 0
        self._last_frame_at = 0.0
        self._recent_restarts: deque[float] = deque()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start capturing in daemon threads; idempotent."""
        with self._cond:
            if self._supervisor is not None and self._supervisor.is_alive():
                if not self._stop.is_set():
                    return
                raise DeviceError(self.name, "the previous capture is still shutting down")
            self._stop.clear()
            self._set_health(Health(HealthState.DEGRADED, "starting"))
            self._supervisor = threading.Thread(
                target=self._supervise, name=f"{self.name}-watchdog", daemon=True
            )
            self._supervisor.start()

    def stop(self) -> None:
        """Stop capturing and release the camera. Never hangs on a stuck camera driver."""
        with self._cond:
            self._stop.set()
            supervisor = self._supervisor
            self._cond.notify_all()
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout=self._poll_s * 4 + 1.0)
            if supervisor.is_alive():
                log.warning("%s: capture thread did not stop; abandoning it", self.name)
        with self._cond:
            self._set_health(Health(HealthState.DEGRADED, "stopped"))

    close = stop

    @property
    def running(self) -> bool:
        return self._supervisor is not None and self._supervisor.is_alive() and not self._stop.is_set()

    # --- the Camera interface ------------------------------------------------------------------------

    def health(self) -> Health:
        with self._cond:
            return self._health

    def capture(self, timeout_s: float) -> Frame | None:
        """The next frame newer than the last one this method returned; ``None`` at timeout.

        Raises DeviceError when the camera is FAILED or not running.
        """
        with self._cond:
            frame = self._wait_newer(self._returned, timeout_s)
            if frame is not None:
                self._returned = frame.sequence
            return frame

    def next_frame(self, after_sequence: int, timeout_s: float) -> Frame | None:
        """Like :meth:`capture`, for a consumer that keeps its own cursor (``after_sequence``)."""
        with self._cond:
            return self._wait_newer(after_sequence, timeout_s)

    def preview(self) -> Frame | None:
        """The latest frame for the UI, without waiting; ``None`` when there is no fresh one.

        A frame older than the stall timeout is withheld: a frozen picture would tell the traveller
        the camera sees them when it does not.
        """
        frame = self._latest  # a single attribute read: no lock, so the UI thread never blocks
        if frame is None or time.monotonic() - frame.timestamp > self.stall_timeout_s:
            return None
        return frame

    # --- internals: consumers ------------------------------------------------------------------------

    def _wait_newer(self, after_sequence: int, timeout_s: float) -> Frame | None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            if not self.running:
                raise DeviceError(self.name, "camera is not running")
            if self._health.state is HealthState.FAILED:
                raise DeviceError(self.name, self._health.reason)
            latest = self._latest
            if latest is not None and latest.sequence > after_sequence:
                return latest
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._cond.wait(remaining)

    # --- internals: the supervisor --------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            self._supervise_until_stopped()
        except Exception:
            # A bug here must not leave a camera that looks merely "restarting" forever.
            log.exception("%s: camera watchdog crashed", self.name)
            with self._cond:
                self._set_health(Health.failed("camera watchdog crashed"))

    def _supervise_until_stopped(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._generation += 1
                generation = self._generation
            done = threading.Event()
            errors: list[str] = []
            reader = threading.Thread(
                target=self._read_loop,
                args=(generation, done, errors),
                name=f"{self.name}-reader-{generation}",
                daemon=True,
            )
            reader.start()
            reason = self._watch(done, errors)
            with self._cond:
                self._generation += 1  # frames the retiring reader still delivers are dropped
            self._wait_for_reader(done)
            if reason is None or self._stop.is_set():
                return
            self._note_restart(reason)
            if self._stop.wait(self._backoff.next_delay()):
                return

    def _watch(self, done: threading.Event, errors: list[str]) -> str | None:
        """Why this reader must be replaced, or ``None`` when the camera is being stopped."""
        started = time.monotonic()
        tick = min(0.1, self.stall_timeout_s / 4)
        while not self._stop.wait(tick):
            if done.is_set():
                return errors[0] if errors else "capture ended"
            with self._cond:
                last_frame_at = self._last_frame_at
            now = time.monotonic()
            if last_frame_at > started:
                if now - last_frame_at > self.stall_timeout_s:
                    return f"no frame for {self.stall_timeout_s:g} s"
            elif now - started > self.startup_timeout_s:
                return f"no first frame within {self.startup_timeout_s:g} s of opening"
        return None

    def _wait_for_reader(self, done: threading.Event) -> None:
        if done.wait(self.hang_grace_s) or self._stop.is_set():
            return
        reason = f"capture call in {self.source.description} has not returned for {self.hang_grace_s:g} s"
        log.error("%s: %s", self.name, reason)
        with self._cond:
            self._set_health(Health.failed(reason))
        while not done.wait(self._poll_s):
            if self._stop.is_set():
                return

    def _note_restart(self, reason: str) -> None:
        now = time.monotonic()
        with self._cond:
            self.restarts += 1
            self._recent_restarts.append(now)
            while self._recent_restarts and now - self._recent_restarts[0] > self.restart_window_s:
                self._recent_restarts.popleft()
            count = len(self._recent_restarts)
            if count >= self.max_restarts:
                health = Health.failed(f"{count} restarts within {self.restart_window_s:g} s; last: {reason}")
            else:
                health = Health(HealthState.DEGRADED, f"restarting: {reason}")
            self._set_health(health)
        log.warning("%s: %s: restarting (%d within %g s)", self.name, reason, count, self.restart_window_s)

    # --- internals: the reader ---------------------------------------------------------------------------

    def _read_loop(self, generation: int, done: threading.Event, errors: list[str]) -> None:
        source = self.source
        try:
            source.open()
            while not self._retired(generation):
                got = source.read(self._poll_s)
                if got is not None:
                    self._publish(generation, got)
        except DeviceError as exc:
            errors.append(f"{source.description}: {exc.reason}")
        except Exception as exc:
            # Camera libraries raise what they like (cv2.error, RuntimeError, OSError...); any of
            # them means this handle is done, and the supervisor decides what happens next.
            errors.append(f"{source.description}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                source.close()
            done.set()

    def _retired(self, generation: int) -> bool:
        return self._stop.is_set() or generation != self._generation

    def _publish(self, generation: int, got: SourceFrame) -> None:
        now = time.monotonic()
        with self._cond:
            if self._retired(generation):
                return
            self._sequence += 1
            self._latest = Frame(image=got.image, timestamp=now, sequence=self._sequence, meta=got.meta)
            self._last_frame_at = now
            if self._health.state is not HealthState.OK:
                log.info(
                    "%s: frames from %s (was %s)", self.name, self.source.description, self._health.state
                )
                self._set_health(Health.ok())
                self._backoff.reset()
            self._cond.notify_all()

    def _set_health(self, health: Health) -> None:
        """Caller holds the condition; consumers waiting in capture() re-check it."""
        self._health = health
        self._cond.notify_all()
