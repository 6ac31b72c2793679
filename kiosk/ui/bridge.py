"""The one place where the UI meets the lane's threads.

The run loop (``kiosk.flow.runner``) and its second worker answer with futures and emit events on
their own threads; here they are handed to the UI thread through Kivy's clock, so the UI thread
never waits for a device, a model or the disk, and widgets are only ever touched on it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from kivy.clock import Clock

T = TypeVar("T")


def when_done(future: Future[T], done: Callable[[T], None]) -> None:
    """``done(result)`` on the UI thread once ``future`` succeeds; a failure is logged by the runner,
    a cancelled future (the lane stopped, staff went back in) is dropped."""

    def finished(settled: Future[T]) -> None:
        if settled.cancelled() or settled.exception() is not None:
            return
        result = settled.result()
        Clock.schedule_once(lambda _dt: done(result))

    future.add_done_callback(finished)


def on_ui_thread(observer: Callable[[T], None]) -> Callable[[T], None]:
    """``observer``, called on the UI thread whatever thread reports to it."""

    def marshalled(value: T) -> None:
        Clock.schedule_once(lambda _dt: observer(value))

    return marshalled
