"""The lane's run loop: one engine turn after another on a worker thread, with no UI in it.

The loop serves travellers until it is stopped, pauses between transactions for maintenance (and
reopens only once every device reports ``ok``), keeps looking at a closed lane's devices until
they recover, survives a failed turn, and ends when the hub asks for a restart or a reboot
(:attr:`LaneRunner.exit_code` is then 75 or 76, for the service manager). Anything that must run
between transactions (training on/off, a self-test) is queued to the loop's thread; anything else
that blocks (a store write, a device's health) runs on a second worker. Every call returns a
``Future``: a front end (the touchscreen, a test) decides on which thread to take the result.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from drivers.interfaces import Frame, Health, HealthState
from kiosk.flow.engine import LaneEngine, TransactionOutcome
from kiosk.remote import EXIT_CODES

log = logging.getLogger(__name__)

T = TypeVar("T")
IDLE_TIMEOUT_S = 1.0
OUT_OF_SERVICE_RETRY_S = 1.0  # how often a closed lane looks at its devices again
MIN_TURN_S = 0.1  # a loop turn that returns at once (lane still occupied) must not spin
HEALTH_RECHECK_S = 2.0  # how often a paused lane waiting to reopen asks its devices


class FramePreview:
    """The latest camera frame, for an on-screen preview.

    A frame is a face: it is held only until the preview takes it, and dropped on :meth:`clear`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Frame | None = None

    def put(self, frame: Frame) -> None:
        with self._lock:
            self._latest = frame

    def take(self) -> Frame | None:
        with self._lock:
            frame, self._latest = self._latest, None
        return frame

    def clear(self) -> None:
        self.take()


def _settle(future: Future[T], work: Callable[[], T]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(work())
    except BaseException as exc:  # handed to whoever waits on the future, and logged for those who don't
        log.exception("lane work failed")
        future.set_exception(exc)


class LaneRunner:
    def __init__(
        self,
        engine: LaneEngine,
        *,
        after_transaction: Callable[[TransactionOutcome], None] | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        retry_s: float = OUT_OF_SERVICE_RETRY_S,
        health_recheck_s: float = HEALTH_RECHECK_S,
    ) -> None:
        self.engine = engine
        self.preview = FramePreview()
        engine.show_frames(self.preview.put)
        # Called on the loop's thread once a transaction is recorded (a simulated traveller walks off).
        self._after = after_transaction
        self.idle_timeout_s = idle_timeout_s
        self.retry_s = retry_s
        self.health_recheck_s = health_recheck_s
        self.exit_code: int | None = None
        self.stopped = threading.Event()
        self._exit_listeners: list[Callable[[int], None]] = []
        self._running = threading.Event()
        self._paused = threading.Event()
        self._wake = threading.Event()
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._reopening: Future[None] | None = None
        self._pause_lock = threading.Lock()  # a pause and a reopening never cross
        self._last_health_check = float("-inf")
        self._thread: threading.Thread | None = None
        self._actions = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lane-action")
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------------

    def on_exit(self, listener: Callable[[int], None]) -> None:
        """``listener(exit_code)`` on the loop's thread when a hub request ends the loop."""
        self._exit_listeners.append(listener)

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="lane", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the loop; a traveller mid-way is released through the engine's own path."""
        self._running.clear()
        self._wake.set()
        self.engine.cancel()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._closed = True
        self._actions.shutdown(wait=False, cancel_futures=True)
        self._cancel_queued()

    @property
    def running(self) -> bool:
        return self._running.is_set()

    # --- maintenance ------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def pause(self) -> None:
        """Serve nobody after the current transaction (maintenance); a pending reopening is dropped."""
        with self._pause_lock:
            self._paused.set()
            reopening, self._reopening = self._reopening, None
        if reopening is not None:
            reopening.cancel()

    def resume_when_healthy(self) -> Future[None]:
        """Serve again once every device reports ``ok``; the future is done when the lane reopens,
        and cancelled if it is paused again meanwhile."""
        reopening: Future[None] = Future()
        if not self._paused.is_set():
            reopening.set_result(None)
            return reopening
        with self._pause_lock:
            self._reopening = reopening
            self._last_health_check = float("-inf")
        self._wake.set()
        return reopening

    # --- inputs: any thread -------------------------------------------------------------------------

    def cancel(self) -> None:
        self.engine.cancel()  # only sets a flag: safe on any thread

    def request_help(self) -> Future[None]:
        return self.in_background(self.engine.request_help)

    def record_feedback(self, transaction_id: str | None, answer: Mapping[str, Any]) -> Future[None]:
        return self.in_background(lambda: self.engine.record_feedback(transaction_id, answer))

    def set_training(self, on: bool) -> Future[None]:
        return self.in_engine(lambda: self.engine.set_training(on))

    def self_test(
        self, rehearsal: Callable[[], AbstractContextManager[object]] | None = None
    ) -> Future[str | None]:
        return self.in_engine(lambda: self.engine.self_test(rehearsal))

    def device_health(self) -> Future[dict[str, Health]]:
        return self.in_background(self.engine.device_health)

    def in_engine(self, work: Callable[[], T]) -> Future[T]:
        """Run ``work`` on the loop's thread between transactions (also while paused)."""
        future: Future[T] = Future()
        if self._closed:
            future.cancel()
            return future
        self._jobs.put((future, work))
        self._wake.set()
        return future

    def in_background(self, work: Callable[[], T]) -> Future[T]:
        """Run ``work`` on the second worker, never on the caller's thread."""
        future: Future[T] = Future()
        try:
            self._actions.submit(_settle, future, work)
        except RuntimeError:  # stopped: nothing runs any more
            future.cancel()
        return future

    # --- the loop -----------------------------------------------------------------------------------

    def _rest(self, seconds: float) -> None:
        """Wait between turns; a queued job, a pause or a stop cuts it short."""
        self._wake.wait(seconds)

    def _run_jobs(self) -> None:
        while True:
            try:
                future, work = self._jobs.get_nowait()
            except queue.Empty:
                return
            _settle(future, work)

    def _cancel_queued(self) -> None:
        while True:
            try:
                future, _work = self._jobs.get_nowait()
            except queue.Empty:
                return
            future.cancel()

    def _maybe_reopen(self) -> None:
        reopening = self._reopening
        now = time.monotonic()
        if reopening is None or now - self._last_health_check < self.health_recheck_s:
            return
        self._last_health_check = now
        try:
            healthy = all(h.state is HealthState.OK for h in self.engine.device_health().values())
        except Exception:
            log.exception("device health check failed")
            healthy = False
        if not healthy:
            return
        with self._pause_lock:
            # Paused again while the devices answered: the staff keep the lane.
            if self._reopening is not reopening or not reopening.set_running_or_notify_cancel():
                return
            self._reopening = None
            self._paused.clear()
        reopening.set_result(None)

    def _loop(self) -> None:
        try:
            while self._running.is_set():
                self._wake.clear()  # before the jobs: one queued meanwhile wakes the next rest
                self._run_jobs()
                if self._paused.is_set():
                    self._maybe_reopen()
                    if self._paused.is_set():
                        self._rest(self.health_recheck_s if self._reopening else self.retry_s)
                    continue
                if self._turn():
                    return
        finally:
            self._running.clear()
            self.stopped.set()

    def _turn(self) -> bool:
        """One engine turn; ``True`` when the hub asked this process to stop."""
        started = time.monotonic()
        try:
            outcome = self.engine.run_once(self.idle_timeout_s)
        except Exception:  # the engine fails safe itself; the loop must survive to serve again
            log.exception("engine turn failed")
            self._rest(self.retry_s)
            return False
        if outcome is not None and outcome.transaction_id is not None and self._after is not None:
            self._after(outcome)
        why = self.engine.restart_requested
        if why is not None:
            self.exit_code = EXIT_CODES[why]
            log.warning("stopping for a %s requested by the hub (exit %d)", why, self.exit_code)
            for listener in self._exit_listeners:
                listener(self.exit_code)
            return True
        if outcome is not None and outcome.decision == "OUT_OF_SERVICE":
            self._rest(self.retry_s)
        elif time.monotonic() - started < MIN_TURN_S:
            self._rest(MIN_TURN_S)
        return False
