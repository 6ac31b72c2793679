"""Staff only: device health, versions, recent errors, a self-test, training mode, back to service.

This screen may show why the lane is closed (the engine's out-of-service reason): staff need it,
and no traveller gets here without the PIN.
"""

from __future__ import annotations

import logging
import platform
from collections import deque
from typing import Any

import kivy
from kivy.app import App
from kivy.clock import Clock, ClockEvent
from kivy.properties import BooleanProperty, StringProperty

from kiosk.ui.i18n import tr
from kiosk.ui.languages import N_
from kiosk.ui.widgets import GateScreen

REFRESH_S = 2.0
RECENT_ERRORS = 8


class RecentErrors(logging.Handler):
    """The last few errors logged anywhere in the kiosk, for the staff screen."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.lines: deque[str] = deque(maxlen=RECENT_ERRORS)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record).splitlines()[0])


SERVICE = {True: N_("Lane: in service"), False: N_("Lane: out of service")}
SELF_TEST = {
    "passed": N_("Self-test passed."),
    "failed": N_("Self-test failed: {detail}"),
    "running": N_("Self-test running…"),
}


class MaintenanceScreen(GateScreen):
    status = StringProperty("")
    result = StringProperty("")
    training = BooleanProperty(False)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._refresh: ClockEvent | None = None
        self._snapshot: dict[str, Any] = {}
        self._result_key: tuple[str, str] | None = None
        tr.on_switch(lambda _language: self._render())

    def on_pre_enter(self, *args: object) -> None:
        super().on_pre_enter(*args)
        self.training = App.get_running_app().training
        self._poll()
        self._refresh = Clock.schedule_interval(lambda _dt: self._poll(), REFRESH_S)

    def on_leave(self, *args: object) -> None:
        super().on_leave(*args)
        if self._refresh is not None:
            self._refresh.cancel()
        self.reset()

    def reset(self) -> None:
        self._result_key = None
        self.result = ""

    def _poll(self) -> None:
        App.get_running_app().maintenance_snapshot(self._show)

    def _show(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot
        self._render()

    def _render(self) -> None:
        snap = self._snapshot
        if not snap:
            return
        lines = [tr.gettext(SERVICE[snap["in_service"]])]
        if snap["reason"]:
            lines.append(f"  {snap['reason']}")
        lines.append(tr._("Devices:"))
        lines += [f"  {name}: {state} {reason}".rstrip() for name, state, reason in snap["devices"]]
        lines.append(tr._("Versions:"))
        versions = {**snap["versions"], "kivy": kivy.__version__, "python": platform.python_version()}
        lines += [f"  {name} {value}" for name, value in versions.items()]
        lines.append(tr._("Recent errors:"))
        lines += [f"  {line}" for line in snap["errors"]] or ["  " + tr._("none")]
        self.status = "\n".join(lines)
        if self._result_key is not None:
            key, detail = self._result_key
            self.result = tr.gettext(SELF_TEST[key]).format(detail=detail)

    def self_test(self) -> None:
        self._result_key = ("running", "")
        self._render()
        App.get_running_app().self_test(self._self_tested)

    def _self_tested(self, problem: str | None) -> None:
        self._result_key = ("failed", problem) if problem else ("passed", "")
        self._poll()

    def toggle_training(self) -> None:
        app = App.get_running_app()
        app.set_training(not app.training)
        self.training = not self.training

    def leave(self) -> None:
        App.get_running_app().leave_maintenance()

    def quit(self) -> None:
        App.get_running_app().stop()
