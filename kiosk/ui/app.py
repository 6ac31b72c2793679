"""The kiosk app: screens that follow the engine, the chrome around them, and kiosk behaviour.

The app keeps no state that matters beyond the screen in front of the traveller: the engine and
the store hold everything else, so a UI that crashes and is restarted comes back clean.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock, ClockEvent
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import BooleanProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.screenmanager import NoTransition, ScreenManager

from drivers.interfaces import Health
from kiosk.app import ServedLane
from kiosk.flow.engine import FlowEvent
from kiosk.flow.states import State
from kiosk.pinlock import PinResult, PinVerdict
from kiosk.simulation.population import ARCHETYPE_NAMES
from kiosk.ui import icons  # noqa: F401  (registers the icon widgets for the kv rules)
from kiosk.ui.bridge import on_ui_thread, when_done
from kiosk.ui.i18n import tr
from kiosk.ui.navigator import STAFF_SCREENS, Screen, screen_for
from kiosk.ui.overlays import HelpOverlay, InactivityOverlay
from kiosk.ui.palette import colours
from kiosk.ui.screens.attract import AttractScreen
from kiosk.ui.screens.camera import CameraScreen
from kiosk.ui.screens.chip import ChipScreen
from kiosk.ui.screens.document_problem import DocumentProblemScreen
from kiosk.ui.screens.feedback import FeedbackScreen
from kiosk.ui.screens.fingerprint import FingerprintScreen
from kiosk.ui.screens.go import GoScreen
from kiosk.ui.screens.maintenance import MaintenanceScreen, RecentErrors
from kiosk.ui.screens.officer import OfficerScreen
from kiosk.ui.screens.out_of_service import OutOfServiceScreen
from kiosk.ui.screens.pin import PinScreen
from kiosk.ui.screens.place_passport import PlacePassportScreen
from kiosk.ui.screens.processing import ProcessingScreen
from kiosk.ui.screens.reading import ReadingScreen
from kiosk.ui.sim_panel import SHORTCUTS, SimPanel
from kiosk.ui.speech import Speaker
from kiosk.ui.theme import sizes
from kiosk.ui.widgets import BottomBar, CornerHold, GateScreen, TrainingBanner

log = logging.getLogger(__name__)

UI_DIR = Path(__file__).resolve().parent
SCREENS: dict[Screen, type[GateScreen]] = {
    Screen.ATTRACT: AttractScreen,
    Screen.PLACE_PASSPORT: PlacePassportScreen,
    Screen.READING: ReadingScreen,
    Screen.CHIP: ChipScreen,
    Screen.DOCUMENT_PROBLEM: DocumentProblemScreen,
    Screen.CAMERA: CameraScreen,
    Screen.FINGERPRINT: FingerprintScreen,
    Screen.PROCESSING: ProcessingScreen,
    Screen.GO: GoScreen,
    Screen.OFFICER: OfficerScreen,
    Screen.FEEDBACK: FeedbackScreen,
    Screen.OUT_OF_SERVICE: OutOfServiceScreen,
    Screen.PIN: PinScreen,
    Screen.MAINTENANCE: MaintenanceScreen,
}
# Screens where nobody but the person in front of it moves things on: they time out to the start.
INACTIVITY_SCREENS = frozenset({Screen.PLACE_PASSPORT, Screen.PIN, Screen.MAINTENANCE})
ESCAPE_KEYS = (27, 1001)  # Escape, Android back


def _rss_mb() -> float:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # not Linux: nothing to report
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


def load_rules() -> None:
    """The shared rules first: screens' rules use the widgets they define."""
    Builder.load_file(str(UI_DIR / "widgets.kv"))
    for path in sorted(UI_DIR.glob("*.kv")) + sorted((UI_DIR / "screens").glob("*.kv")):
        if path.name != "widgets.kv":
            Builder.load_file(str(path))


class GerbangApp(App):
    training = BooleanProperty(False)
    title = "Gerbang"

    def __init__(
        self,
        lane: ServedLane,
        *,
        speech_dir: Path,
        serve: bool = True,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        kiosk = lane.kiosk
        self.kiosk = kiosk
        self.config_model = kiosk.config
        self.world = lane.world
        self.runner = lane.runner
        self.serve = serve  # False: screens only (screenshots)
        self.training = kiosk.engine.training
        self.frames = self.runner.preview
        kiosk.engine.subscribe(on_ui_thread(self._on_event))
        # The hub asked for a restart or reboot: the app stops and the supervisor starts it again.
        self.runner.on_exit(on_ui_thread(lambda _code: self.stop()))
        ui = kiosk.config.ui
        self.pin = lane.pin
        self.errors = RecentErrors()
        self.speaker = Speaker(speech_dir, ui.spoken_prompts)
        self.started_at = time.monotonic() if started_at is None else started_at
        self._last_touch = time.monotonic()
        self._holds: list[ClockEvent] = []
        self._go_since = 0.0
        self.screens: dict[Screen, GateScreen] = {}

    # --- building ------------------------------------------------------------------------------

    def build(self) -> BoxLayout:
        ui = self.config_model.ui
        load_rules()
        Window.rotation = ui.rotation  # touch coordinates are rotated by Kivy along with the picture
        Window.show_cursor = False
        Window.clearcolor = colours.page  # what shows where a staff screen folds the bar away
        Window.bind(on_request_close=self._on_request_close, on_keyboard=self._on_keyboard)
        Window.bind(size=lambda _w, size: sizes.update(size[0], size[1], ui.dpi))
        Window.bind(on_touch_down=self._touched)
        sizes.update(Window.width, Window.height, ui.dpi)

        self.manager = ScreenManager(transition=NoTransition(), pos_hint={"x": 0, "y": 0})
        for screen, cls in SCREENS.items():
            widget = cls(name=str(screen))
            self.screens[screen] = widget
            self.manager.add_widget(widget)
        self.manager.bind(current=lambda _m, name: self._shown(Screen(name)))

        root = BoxLayout(orientation="vertical")
        self.root_box = root
        self.banner = TrainingBanner()
        body = FloatLayout()
        body.add_widget(self.manager)
        corner = CornerHold(self.open_pin, size_hint=(None, None), pos_hint={"x": 0, "top": 1})
        sizes.bind(touch=lambda _s, px: setattr(corner, "size", (px * 1.5, px * 1.5)))
        corner.size = (sizes.touch * 1.5, sizes.touch * 1.5)
        body.add_widget(corner)
        if self.world is not None and ui.simulation_panel:
            self._add_sim_panel(body)
        root.add_widget(body)
        self.bar = BottomBar()
        root.add_widget(self.bar)
        self.bind(training=lambda _a, on: self._show_banner(on))
        self._show_banner(self.training)

        self.help_overlay = HelpOverlay()
        self.inactivity = InactivityOverlay(self._inactive)
        tr.switch(ui.language)
        self.manager.current = str(self._resting_screen())
        logging.getLogger().addHandler(self.errors)
        return root

    def _add_sim_panel(self, body: FloatLayout) -> None:
        from kivy.factory import Factory

        world = self.world
        assert world is not None
        runner = self.runner
        self.sim_panel = SimPanel(
            send=self.send_traveller,
            fail=lambda name, reason: runner.in_background(lambda: world.break_device(name, reason)),
            repair=lambda: runner.in_background(world.repair_all),
            help_call=self.call_officer,
        )
        toggle = Factory.SimToggle()
        toggle.bind(on_release=lambda _b: self.sim_panel.toggle())
        body.add_widget(self.sim_panel)
        body.add_widget(toggle)

    def _show_banner(self, on: bool) -> None:
        shown = self.banner.parent is not None
        if on and not shown:
            self.root_box.add_widget(self.banner, index=len(self.root_box.children))  # on top
        elif shown and not on:
            self.root_box.remove_widget(self.banner)

    def on_start(self) -> None:
        if self.serve:
            self.runner.start()
            Clock.schedule_interval(self._watch_inactivity, 1.0)
        Clock.schedule_once(self._ready)

    def _ready(self, _dt: float) -> None:
        elapsed = time.monotonic() - self.started_at
        log.info("screens ready %.2f s after start, RSS %.0f MB", elapsed, _rss_mb())

    def on_stop(self) -> None:
        if self.serve:
            self.runner.stop()
        logging.getLogger().removeHandler(self.errors)

    # --- showing screens -----------------------------------------------------------------------

    @property
    def current(self) -> Screen:
        return Screen(self.manager.current)

    def show(self, screen: Screen) -> None:
        self.manager.current = str(screen)

    def _shown(self, screen: Screen) -> None:
        self.bar.opacity = 0 if screen in STAFF_SCREENS else 1
        self.bar.disabled = screen in STAFF_SCREENS
        self._last_touch = time.monotonic()
        if screen not in (Screen.CAMERA,):
            self.frames.clear()
        self.speaker.say(screen, tr.language)

    def _resting_screen(self) -> Screen:
        return Screen.OUT_OF_SERVICE if self.kiosk.engine.state is State.OUT_OF_SERVICE else Screen.ATTRACT

    def back_to_start(self) -> None:
        """The next traveller's start: default language, nothing of the last one left on screen."""
        self._cancel_holds()
        self.inactivity.stop()
        for screen in self.screens.values():
            screen.reset()
        tr.switch(self.config_model.ui.language)
        self.show(self._resting_screen())

    def switch_language(self, language: str) -> None:
        tr.switch(language)

    # --- following the engine ------------------------------------------------------------------

    def _on_event(self, event: FlowEvent) -> None:
        if event.kind == "state":
            self._on_state(event)
        elif event.data.get("stage") == State.CHIP_READ:
            chip = self.screens[Screen.CHIP]
            assert isinstance(chip, ChipScreen)
            chip.show_progress(event.data.get("progress"))
        elif event.kind == "guidance":
            camera = self.screens[Screen.CAMERA]
            assert isinstance(camera, CameraScreen)
            camera.show_guidance(event.data.get("codes", ()))
        elif event.kind == "help":
            self.help_overlay.show_for(self.config_model.ui.help_hold_s)

    def _on_state(self, event: FlowEvent) -> None:
        state = event.state
        processing = self.screens[Screen.PROCESSING]
        assert isinstance(processing, ProcessingScreen)
        processing.show_state(state)
        if state is State.DOCUMENT_READ:
            self._cancel_holds()  # a new traveller takes the screen from the last one
        if state is State.ENTRY_OPEN:
            self._go_since = time.monotonic()
        if state is State.DONE and self.current is Screen.GO:
            wait = self.config_model.ui.go_hold_s - (time.monotonic() - self._go_since)
            self._hold(max(0.0, wait), Screen.GO, lambda: self._ask_feedback(event.transaction_id))
        if state is State.REFERRED:
            self._hold(self.config_model.ui.officer_hold_s, Screen.OFFICER, self.back_to_start)
        target = screen_for(state, self.current)
        if target is Screen.ATTRACT:
            self.back_to_start()  # a transaction ended: nothing of it stays on screen
        elif target is not None:
            self.show(target)

    def _hold(self, seconds: float, screen: Screen, then: Callable[[], None]) -> None:
        def fire(_dt: float) -> None:
            if self.current is screen:
                then()

        self._holds.append(Clock.schedule_once(fire, seconds))

    def _cancel_holds(self) -> None:
        for hold in self._holds:
            hold.cancel()
        self._holds.clear()

    def _ask_feedback(self, transaction_id: str | None) -> None:
        feedback = self.screens[Screen.FEEDBACK]
        assert isinstance(feedback, FeedbackScreen)
        self.show(Screen.FEEDBACK)
        feedback.open_for(transaction_id)

    # --- feeding the engine --------------------------------------------------------------------

    def call_officer(self) -> None:
        self.runner.request_help()

    def leave_for_officer(self) -> None:
        """The traveller chose to go to the counter: end the transaction, say where to go."""
        self.runner.cancel()
        self.show(Screen.OFFICER)
        self._hold(self.config_model.ui.officer_hold_s, Screen.OFFICER, self.back_to_start)

    def record_feedback(self, transaction_id: str | None, answer: dict[str, Any]) -> None:
        self.runner.record_feedback(transaction_id, answer)

    def send_traveller(self, archetype: str) -> None:
        world = self.world
        if world is not None:
            self.runner.in_background(lambda: world.arrive(archetype))

    # --- inactivity ------------------------------------------------------------------------------

    def _touched(self, _window: object, _touch: object) -> None:
        self._last_touch = time.monotonic()

    def _watch_inactivity(self, _dt: float) -> None:
        ui = self.config_model.ui
        screen = self.current
        engine_idle = self.kiosk.engine.state in (State.IDLE, State.OUT_OF_SERVICE)
        if screen not in INACTIVITY_SCREENS or not engine_idle or self.inactivity.showing:
            return
        if time.monotonic() - self._last_touch >= ui.inactivity_s:
            self.inactivity.start(ui.inactivity_countdown_s)

    def _inactive(self) -> None:
        if self.current is Screen.MAINTENANCE:
            self.leave_maintenance()
        else:
            self.back_to_start()

    # --- maintenance -----------------------------------------------------------------------------

    def open_pin(self) -> None:
        if self.current not in STAFF_SCREENS:
            self.show(Screen.PIN)

    def try_pin(self, pin: str, show: Callable[[PinResult], None]) -> None:
        def checked(result: PinResult) -> None:
            show(result)
            if result.verdict is PinVerdict.OPEN:
                self._enter_maintenance()

        when_done(self.runner.in_background(lambda: self.pin.attempt(pin)), checked)

    def _enter_maintenance(self) -> None:
        self._cancel_holds()
        self.runner.pause()  # also drops a reopening still waiting for healthy devices
        self.runner.cancel()  # staff take over the lane: a traveller mid-way is released
        self.show(Screen.MAINTENANCE)

    def maintenance_snapshot(self, show: Callable[[dict[str, Any]], None]) -> None:
        engine = self.kiosk.engine

        def snapshot(health: dict[str, Health]) -> None:
            show(
                {
                    "in_service": engine.state is not State.OUT_OF_SERVICE,
                    "reason": engine.out_of_service_reason,
                    "devices": [(name, str(h.state), h.reason) for name, h in health.items()],
                    "versions": dict(engine.versions),
                    "errors": list(self.errors.lines),
                }
            )

        when_done(self.runner.device_health(), snapshot)

    def self_test(self, done: Callable[[str | None], None]) -> None:
        world = self.world
        when_done(self.runner.self_test(world.rehearsal if world is not None else None), done)

    def set_training(self, on: bool) -> None:
        self.runner.set_training(on)  # applied between transactions
        self.training = on

    def leave_maintenance(self) -> None:
        """Back to service only with every device healthy; until then the lane stays closed."""
        self.inactivity.stop()
        self.show(Screen.OUT_OF_SERVICE)

        def reopened(_none: None) -> None:
            if self.current not in STAFF_SCREENS:  # staff went back in: the reopening was cancelled
                self.back_to_start()

        when_done(self.runner.resume_when_healthy(), reopened)

    # --- kiosk behaviour -------------------------------------------------------------------------

    def _on_request_close(self, *_args: object, **_kwargs: object) -> bool:
        return self.current is not Screen.MAINTENANCE  # True keeps the window open

    def _on_keyboard(
        self, _window: object, key: int, _scancode: int, codepoint: str | None, *_rest: object
    ) -> bool:
        if key in ESCAPE_KEYS:
            return self.current is not Screen.MAINTENANCE  # swallowed outside maintenance
        if self.world is not None and codepoint and codepoint in SHORTCUTS:
            self.send_traveller(ARCHETYPE_NAMES[SHORTCUTS.index(codepoint)])
            return True
        return False
