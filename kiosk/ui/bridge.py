"""The one place where the UI meets the engine's threads.

The engine runs in its own worker thread, one ``run_once`` after another; its events reach the
UI thread through Kivy's clock. Anything else that may block (a store write for a help call or a
rating, a device's health, the simulated world's lock) runs on a second worker, and its result
comes back through the clock too: the UI thread never waits for a device, a model or the disk.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

from kivy.clock import Clock

from drivers.interfaces import Camera, Frame, Health
from kiosk.flow.engine import FlowEvent, LaneEngine, TransactionOutcome

log = logging.getLogger(__name__)

T = TypeVar("T")
IDLE_TIMEOUT_S = 1.0
OUT_OF_SERVICE_RETRY_S = 1.0  # how often a closed lane looks at its devices again
MIN_TURN_S = 0.1  # a loop turn that returns at once (lane still occupied) must not spin


class FrameTap:
    """The engine's camera, unchanged, with its latest frame kept for the on-screen preview.

    A frame is a face: it is held only until the preview takes it, and dropped on :meth:`clear`.
    """

    def __init__(self, camera: Camera) -> None:
        self.inner = camera
        self.name = camera.name
        self._lock = threading.Lock()
        self._latest: Frame | None = None

    def capture(self, timeout_s: float) -> Frame | None:
        frame = self.inner.capture(timeout_s)
        if frame is not None:
            with self._lock:
                self._latest = frame
        return frame

    def health(self) -> Health:
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()

    def take(self) -> Frame | None:
        with self._lock:
            frame, self._latest = self._latest, None
        return frame

    def clear(self) -> None:
        self.take()


class EngineBridge:
    def __init__(
        self,
        engine: LaneEngine,
        on_event: Callable[[FlowEvent], None],
        after_transaction: Callable[[TransactionOutcome], None] | None = None,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.frames = FrameTap(engine.devices.camera)
        # Before the loop starts, so the engine only ever sees the tapped camera.
        engine.devices = replace(engine.devices, camera=self.frames)
        self._on_event = on_event
        self._after = after_transaction
        # A hub reload_config/reboot: the loop ends between travellers and the app stops.
        self._on_restart = on_restart
        self._running = threading.Event()
        self._paused = threading.Event()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._actions = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ui-action")
        engine.subscribe(self._observe)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._running.clear()
        self.engine.cancel()  # a traveller mid-way is released through the engine's own path
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._actions.shutdown(wait=False, cancel_futures=True)

    def pause(self) -> None:
        """Serve nobody after the current transaction (maintenance)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    # --- calls from the UI thread ----------------------------------------------------------------

    def in_engine(self, work: Callable[[], T], done: Callable[[T], None] | None = None) -> None:
        """Run ``work`` on the engine's thread between transactions (self-test, service checks)."""
        self._jobs.put(lambda: self._deliver(work, done))

    def in_background(
        self, work: Callable[[], T], done: Callable[[T], None] | None = None
    ) -> Future[None] | None:
        """Run ``work`` off the UI thread; ``done(result)`` comes back on the UI thread."""
        if not self._running.is_set():
            return None
        return self._actions.submit(self._deliver, work, done)

    def request_help(self) -> None:
        self.in_background(self.engine.request_help)

    def cancel(self) -> None:
        self.engine.cancel()  # only sets a flag: safe on any thread

    # --- worker side ---------------------------------------------------------------------------

    def _deliver(self, work: Callable[[], T], done: Callable[[T], None] | None) -> None:
        try:
            result = work()
        except Exception:
            log.exception("background work failed")
            return
        if done is not None:
            Clock.schedule_once(lambda _dt: done(result))

    def _observe(self, event: FlowEvent) -> None:
        Clock.schedule_once(lambda _dt: self._on_event(event))

    def _run_jobs(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            job()

    def _loop(self) -> None:
        while self._running.is_set():
            self._run_jobs()
            if self._paused.is_set():
                time.sleep(MIN_TURN_S)
                continue
            started = time.monotonic()
            try:
                outcome = self.engine.run_once(IDLE_TIMEOUT_S)
            except Exception:  # the engine fails safe itself; the loop must survive to serve again
                log.exception("engine turn failed")
                time.sleep(OUT_OF_SERVICE_RETRY_S)
                continue
            if outcome is not None and outcome.transaction_id is not None and self._after is not None:
                self._after(outcome)
            if self.engine.desk.restart_requested is not None and self._on_restart is not None:
                self._on_restart(self.engine.desk.restart_requested)
                return
            if outcome is not None and outcome.decision == "OUT_OF_SERVICE":
                time.sleep(OUT_OF_SERVICE_RETRY_S)
            elif time.monotonic() - started < MIN_TURN_S:
                time.sleep(MIN_TURN_S)
