"""The lane's transaction engine: a plain state machine, independent of any UI.

One call to :meth:`LaneEngine.run_once` serves one traveller, from the document to the exit door;
``kiosk.flow.runner`` calls it in a loop on a worker thread. Screens observe it (``subscribe``,
``show_frames``) and feed it through explicit inputs (``cancel``, ``request_help``,
``record_feedback``, ``set_training``, ``self_test``); devices and models are called here, in the
caller's worker thread, never on a UI thread. Nothing outside the engine replaces its devices.

Fail-safe is structural: every path out of a transaction, including exceptions, goes through
``DoorController.secure`` or ``fail_safe`` in a ``finally``; the entry door is opened only after
the decision is durably recorded.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

from common.clock import Clock
from config import DoorsSection, FaceSection, FingerprintPolicySection, FlowSection
from drivers.chip.errors import ChipError, NoCardError, ReaderUnavailableError
from drivers.door_controller import DoorAlarm, DoorController, DoorTimings, InterlockError
from drivers.interfaces import (
    Camera,
    ChipReader,
    DeviceError,
    DocumentReader,
    FingerprintResult,
    FingerprintSensor,
    Frame,
    Gate,
    Health,
    HealthState,
    LaneEvent,
    Signal,
)
from kiosk.chip.outcome import ChipOutcome
from kiosk.chip.reading import ChipReadResult, access_key, read_document
from kiosk.chip.trust import TrustStore
from kiosk.documents.mrz import Mrz, NotAnMrz, parse_mrz
from kiosk.enrolment import EnrolmentProvider
from kiosk.flow.states import TERMINAL, State, check_transition
from kiosk.policy import (
    BiometricOutcome,
    Decision,
    DocumentAssessment,
    FaceReference,
    assess_chip,
    assess_document,
    decide,
    face_reference,
    probable_document_number,
)
from kiosk.privacy import IdentifierHasher
from kiosk.pseudonyms import Pseudonymiser, PseudonymKeyError
from kiosk.reasons import Reason
from kiosk.reference_data import PolicyRules
from kiosk.referrals import ReferralVault
from kiosk.remote import HubDesk
from kiosk.store import FinishedTransaction, Store, StoreError
from models.matching import FaceMatcher, FaceObservation, ModelUnavailable, ReferencePortrait

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL_S = 0.25  # longest a wait goes without looking at cancel requests
MAX_DOCUMENT_ATTEMPTS = 3
# A kiosk with real devices never makes up its own key: its hashes would match none of the hub's.
NO_FLEET_KEY = (
    "fleet key not provisioned (python -m provisioning fleet-key): watchlist and e-visa lookups would "
    "match nothing"
)


@dataclass(frozen=True)
class Devices:
    document_reader: DocumentReader
    chip: ChipReader
    camera: Camera
    fingerprint: FingerprintSensor
    gate: Gate

    def all(self) -> tuple[DocumentReader, ChipReader, Camera, FingerprintSensor, Gate]:
        return (self.document_reader, self.chip, self.camera, self.fingerprint, self.gate)


class ChipStep(StrEnum):
    """Guidance codes of the chip stage (``guidance`` events with ``stage`` = ``chip_read``, and
    ``progress`` 1.0 once the chip is read; none before, since APDU counts are not known ahead)."""

    KEEP_ON_READER = "chip_keep_on_reader"  # looking for the chip: leave the passport where it is
    READING = "chip_reading"
    PUT_BACK = "chip_put_back"  # the passport was lifted during the read
    DONE = "chip_done"


@dataclass(frozen=True)
class FlowEvent:
    """What observers see. Never carries reasons or personal data: screens must not reveal them."""

    kind: str  # "state", "guidance", "help", "service"
    state: State
    transaction_id: str | None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransactionOutcome:
    transaction_id: str | None
    decision: str  # OPEN, REFER, ABANDONED, OUT_OF_SERVICE
    reasons: tuple[str, ...]
    stage_ms: Mapping[str, float]
    path: tuple[str, ...]
    entry_left_unlocked: bool = False


class _BackgroundThread:
    """One daemon thread that runs the calls handed to it in turn (a chip read cannot be cut into
    slices like the other device waits). A daemon, so that a call stuck in a dead reader never holds up
    the process's exit; one thread for the lane's life, because starting one per read costs more than
    a simulated read on a busy machine."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._calls.put((call, future))
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        return future

    def stop(self) -> None:
        """End the thread once the call in hand (if any) returns; nothing is submitted after this."""
        if self._thread is not None:
            self._calls.put(None)

    def _serve(self) -> None:
        while (job := self._calls.get()) is not None:
            call, future = job
            future.set_running_or_notify_cancel()
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the waiting engine thread
                future.set_exception(exc)


class _Ended(Exception):
    """The transaction ends early (walked away, cancelled, unreadable document)."""

    def __init__(self, decision: str, reason: Reason, state: State) -> None:
        super().__init__(f"{decision}: {reason}")
        self.decision = decision
        self.reason = reason
        self.state = state


def _abandon(reason: Reason) -> _Ended:
    return _Ended("ABANDONED", reason, State.ABANDONED)


class _OutOfService(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class _Transaction:
    id: str
    started: float
    path: list[State] = field(default_factory=list)
    stage_ms: dict[str, float] = field(default_factory=dict)
    stage_started: float = 0.0
    mrz: Mrz | None = None
    assessment: DocumentAssessment | None = None
    document_pseudonym: str | None = None
    face_score: float | None = None
    face_attempts: int = 0
    fingerprint_score: int | None = None
    quality: dict[str, float] = field(default_factory=dict)


class LaneEngine:
    def __init__(
        self,
        *,
        devices: Devices,
        matcher: FaceMatcher | None,
        enrolment: EnrolmentProvider,
        store: Store,
        hasher: IdentifierHasher | None,
        pseudonyms: Pseudonymiser,
        clock: Clock,
        flow: FlowSection,
        face: FaceSection,
        fingerprint: FingerprintPolicySection,
        doors: DoorsSection,
        versions: Mapping[str, str],
        chip_trust: Callable[[], TrustStore] = TrustStore,
        training: bool = False,
        desk: HubDesk | None = None,
        referrals: ReferralVault | None = None,
    ) -> None:
        self.devices = devices
        # Set only when the configuration keeps referral details for the officer (sealed).
        self.referrals = referrals
        self.chip_trust = chip_trust  # the trust store in force (kiosk.chip.trust_source.TrustCache)
        self._background = _BackgroundThread("chip-read")
        self.doors = DoorController(
            devices.gate,
            DoorTimings(
                entry_unlocked_max_s=doors.entry_unlocked_max_s,
                exit_unlocked_max_s=doors.exit_unlocked_max_s,
                door_open_max_s=doors.door_open_max_s,
            ),
            monotonic=clock.monotonic,
        )
        self.doors.subscribe(self._door_alarm)
        self.matcher = matcher
        self.enrolment = enrolment
        self.store = store
        self.hasher = hasher  # fleet-key hashes: matching on this device only, never in an event
        self.pseudonyms = pseudonyms  # what events carry instead
        self.clock = clock
        self.flow = flow
        self.face = face
        self.fingerprint = fingerprint
        self.versions = dict(versions)
        self.training = training
        self.desk = desk if desk is not None else HubDesk(store)
        self._state = State.IDLE
        self._observers: list[Callable[[FlowEvent], None]] = []
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._txn: _Transaction | None = None
        self.out_of_service_reason: str | None = None
        # Set by the composition root when the audit ledger did not verify at start (kiosk.ledger.startup):
        # the lane stays closed until a restart finds it intact.
        self.ledger_problem: str | None = None
        # Set by a failed write; the lane stays closed until a write succeeds again.
        self._store_fault: str | None = None
        self._frame_sink: Callable[[Frame], None] | None = None

    # --- observing and feeding -----------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def restart_requested(self) -> str | None:
        """The hub command (``reload_config``, ``reboot``) that wants this process stopped, if any."""
        return self.desk.restart_requested

    def subscribe(self, observer: Callable[[FlowEvent], None]) -> None:
        self._observers.append(observer)

    def show_frames(self, sink: Callable[[Frame], None] | None) -> None:
        """Hand every captured frame to ``sink`` (the on-screen preview); ``None`` stops it.

        Set it before the engine serves: the sink is called on the engine's thread.
        """
        self._frame_sink = sink

    def device_health(self) -> dict[str, Health]:
        """Each device's own report, by name. Blocking (a real device may be asked over its wire)."""
        return {device.name: device.health() for device in self.devices.all()}

    def set_training(self, on: bool) -> None:
        """Flag what follows as training (or not). Between transactions only: a transaction is one or
        the other from start to end, so the runner applies it on the engine's thread."""
        self.training = on

    def record_feedback(self, transaction_id: str | None, answer: Mapping[str, Any]) -> None:
        """The traveller's rating or reported problem for their transaction. Blocking (a store write)."""
        try:
            self.store.outbox.add(
                "feedback", {"transaction_id": transaction_id, **answer}, training=self.training
            )
        except StoreError as exc:
            log.error("could not record feedback: %s", exc)

    def cancel(self) -> None:
        """The traveller (or an officer) abandons the current transaction."""
        self._cancel.set()

    def request_help(self) -> None:
        """Call an officer to this lane; works in any state, including out of service."""
        txn_id = self._txn.id if self._txn else None
        try:
            self.store.outbox.add(
                "help",
                {"state": str(self._state), "transaction_id": txn_id},
                training=self.training,
            )
        except StoreError as exc:
            log.error("could not record a help request: %s", exc)
        self._emit("help", {})

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the engine's own thread (the devices and the store belong to the kiosk)."""
        self._background.stop()

    def start(self) -> list[str]:
        """Start-up after any stop, clean or not: doors secured, unfinished work marked aborted."""
        self.doors.secure()
        aborted = self.store.transactions.abort_unfinished()
        if aborted:
            log.warning("%d transaction(s) were interrupted by the last stop", len(aborted))
        return aborted

    def check_service(self) -> str | None:
        """Why the lane cannot serve travellers now, or ``None`` when it can.

        Out of service, every device must be fully healthy before the lane reopens; in service, a
        degraded device (e.g. one reporting noise) may go on serving.
        """
        if self.ledger_problem is not None:
            return self.ledger_problem
        if self.desk.closed_reason is not None:
            return self.desk.closed_reason
        strict = self._state is State.OUT_OF_SERVICE
        for device in self.devices.all():
            health = device.health()
            if not health.usable or (strict and health.state is not HealthState.OK):
                return f"{device.name}: {health.reason or health.state}"
        if self.matcher is None:
            return "face model unavailable"
        if self.hasher is None:
            return NO_FLEET_KEY
        if self._store_fault is not None:
            try:
                self.store.meta.set("last_service_check", self.clock.now().isoformat())
            except StoreError:
                return self._store_fault
            self._store_fault = None
        if self.store.reference_data.policy_rules() is None:
            return "no entitlement policy loaded"
        try:
            # Here, between travellers, so an idle kiosk still destroys the last epoch's key on time.
            self.pseudonyms.rotate()
        except PseudonymKeyError as exc:
            return str(exc)
        return None

    def self_test(self, rehearsal: Callable[[], AbstractContextManager[object]] | None = None) -> str | None:
        """Why the lane cannot serve, or ``None``; between transactions only (maintenance).

        With a ``rehearsal`` (someone who steps up to the gate while it is entered, and leaves after)
        one whole passage is run too, recorded as training: a test passage is no real crossing.
        """
        problem = self.check_service()
        if problem is not None or rehearsal is None:
            return problem
        training, self.training = self.training, True
        try:
            with rehearsal():
                outcome = self.run_once(self.flow.document_timeout_s)
        finally:
            self.training = training
        decision = outcome.decision if outcome else "NO_TRANSACTION"
        return None if decision == "OPEN" else f"rehearsal passage: {decision}"

    def run_once(self, idle_timeout_s: float) -> TransactionOutcome | None:
        """Serve one traveller. ``None`` when no document was presented within ``idle_timeout_s``."""
        self._serve_hub_requests()
        problem = self.check_service()
        if problem is not None:
            self._go_out_of_service(problem)
            self.report_status()
            return TransactionOutcome(None, "OUT_OF_SERVICE", (), {}, (str(State.OUT_OF_SERVICE),))
        if self._state is State.OUT_OF_SERVICE:
            self._set_state(State.IDLE)
            self.out_of_service_reason = None
            self._emit("service", {"in_service": True})
        self.report_status()
        self._cancel.clear()
        self.doors.secure()
        try:
            self._drain_lane_events()
            if self.devices.gate.lane_occupied():
                return None  # someone is still in the lane; the exit stays free until it clears
            read = self._wait(self.devices.document_reader.read, idle_timeout_s, cancellable=False)
        except DeviceError as exc:
            self._go_out_of_service(str(exc))
            return TransactionOutcome(None, "OUT_OF_SERVICE", (), {}, (str(State.OUT_OF_SERVICE),))
        if read is None:
            return None
        return self._serve(read)

    # --- the hub's requests and the status it reads -----------------------------------------------

    def report_status(self) -> None:
        """What the edge agent publishes as this kiosk's state (written on change or heartbeat)."""
        if self.desk.mode == "maintenance":
            mode = "maintenance"
        else:
            mode = "out_of_service" if self._state is State.OUT_OF_SERVICE else "in_service"
        devices = {}
        for device in self.devices.all():
            health = device.health()
            devices[device.name] = {"state": str(health.state), "reason": health.reason}
        self.desk.report(
            {
                "mode": mode,
                "reason": self.out_of_service_reason,
                "devices": devices,
                "versions": self.versions,
                "fleet_key_id": None if self.hasher is None else self.hasher.key_id,
                "training": self.training,
            }
        )

    def _serve_hub_requests(self) -> None:
        """Act on signed hub commands the agent queued; only ever between travellers."""
        for request in self.desk.take_requests():
            outcome = "done"
            try:
                if request.name == "set_mode":
                    self.desk.set_mode(str(request.args["mode"]))
                    if self.desk.mode != "in_service":
                        self._go_out_of_service(self.desk.closed_reason or "closed by the hub")
                elif request.name == "open_exit_door":
                    self._officer_exit(float(request.args.get("hold_s", 10.0)))
                else:  # reload_config, reboot: the process stops and its supervisor starts it again
                    self.desk.restart_requested = request.name
                    outcome = "restart_requested"
            except (DeviceError, InterlockError, StoreError) as exc:
                outcome = f"failed: {exc}"
            self.desk.done(request, outcome, self.training)

    def _officer_exit(self, hold_s: float) -> None:
        """Officer override: free the exit (entry locked first by the interlock) for ``hold_s``."""
        self._alert("officer_exit_override", {"hold_s": hold_s})
        self.doors.open_exit()
        deadline = self.clock.monotonic() + hold_s
        while (remaining := deadline - self.clock.monotonic()) > 0:
            self.doors.wait_event(remaining)
        self.doors.secure()

    # --- one transaction ---------------------------------------------------------------------------

    def _serve(self, first_read: Any) -> TransactionOutcome:
        try:
            txn_id = self.store.transactions.begin(versions=self.versions, training=self.training)
        except StoreError as exc:
            self._store_failed(exc)
            return TransactionOutcome(None, "OUT_OF_SERVICE", (Reason.STORE_FAILURE,), {}, ())
        txn = _Transaction(id=txn_id, started=self.clock.monotonic())
        self._txn = txn
        decision, reasons = "REFER", [Reason.DEVICE_FAILURE]
        try:
            decision, reasons = self._run(txn, first_read)
        except _Ended as end:
            decision, reasons = end.decision, [end.reason]
            self._finish_state(txn, end.state)
        except _OutOfService as exc:
            decision, reasons = "REFER", [exc.reason]
            self.doors.fail_safe()
            self._go_out_of_service(exc.detail)
        except StoreError as exc:
            decision, reasons = "REFER", [Reason.STORE_FAILURE]
            self._store_failed(exc)
        except (DeviceError, InterlockError, ModelUnavailable) as exc:
            decision, reasons = "REFER", [Reason.DEVICE_FAILURE]
            self.doors.fail_safe()
            self._go_out_of_service(str(exc))
        except Exception:
            # Unknown faults must still leave the lane safe and the event recorded.
            log.exception("transaction %s failed", txn_id)
            self.doors.fail_safe()
            self._go_out_of_service("internal error")
        finally:
            if self._state is not State.OUT_OF_SERVICE:
                self.doors.secure()
        entry_unlocked = self._entry_unlocked()
        outcome = TransactionOutcome(
            transaction_id=txn_id,
            decision=decision,
            reasons=tuple(str(r) for r in reasons),
            stage_ms=dict(txn.stage_ms),
            path=tuple(str(s) for s in txn.path),
            entry_left_unlocked=entry_unlocked,
        )
        self._record(txn, outcome)
        if self.matcher is not None:
            self.matcher.forget()  # no face, chip or embedding outlives its transaction
        self._txn = None
        if self._state in TERMINAL:
            self._set_state(State.IDLE)
        return outcome

    def _run(self, txn: _Transaction, read: Any) -> tuple[str, list[Reason]]:
        mrz = self._read_document(txn, read)
        rules = self.store.reference_data.policy_rules()
        if rules is None:
            raise _OutOfService(Reason.NO_POLICY, "no entitlement policy loaded")
        if self.hasher is None:  # check_service keeps such a lane closed; a lookup must never run keyless
            raise _OutOfService(Reason.DEVICE_FAILURE, NO_FLEET_KEY)
        assessment = assess_document(
            mrz, self.clock.now().date(), rules, self.store.reference_data, self.hasher
        )
        txn.assessment = assessment
        txn.document_pseudonym = self.pseudonyms.document(mrz.issuing_state, probable_document_number(mrz))
        for reason in assessment.silent_alerts:
            # The hub learns which of its records matched, not the document's fleet-key hash.
            self._alert("referral_" + reason.lower(), {"watchlist_records": assessment.hit_records(reason)})

        chip, chip_read = self._chip(txn, mrz, rules)
        # Only reason codes leave the chip stage: DG1 and the portrait end with this transaction.
        assessment = replace(assessment, reasons=assessment.reasons + assess_chip(chip, rules))
        portrait = self._reference_portrait(face_reference(chip, rules), chip_read, read, mrz)
        del chip_read

        biometrics = BiometricOutcome()
        if assessment.face_match_required:
            biometrics = self._face(txn, portrait, biometrics)
        del portrait
        if assessment.fingerprint_required:
            biometrics = self._fingerprint(txn, read, mrz, biometrics)

        self._enter(txn, State.DECISION)
        gate_health = self.devices.gate.health()
        verdict = decide(assessment, biometrics, gate_health.usable)
        self.store.transactions.record_decision(
            txn.id, decision=verdict.decision.value, reasons=list(verdict.reasons)
        )
        if verdict.decision is Decision.REFER:
            self._finish_state(txn, State.REFERRED)
            return "REFER", list(verdict.reasons)
        return self._passage(txn)

    def _read_document(self, txn: _Transaction, read: Any) -> Mrz:
        attempts = 0
        while True:
            attempts += 1
            self._enter(txn, State.DOCUMENT_READ)
            try:
                mrz = parse_mrz(read.lines, today=self.clock.now().date())
                # A number that passes only after a probable OCR repair is worth a fresh read
                # before the policy refers it.
                last_try = attempts >= MAX_DOCUMENT_ATTEMPTS
                if mrz.valid or (last_try and mrz.valid_if_repaired):
                    self._enter(txn, State.DOCUMENT_CHECKS)
                    txn.mrz = mrz
                    return mrz
                problem = Reason.DOCUMENT_CHECK_FAILED
            except NotAnMrz:
                problem = Reason.DOCUMENT_UNREADABLE
            self._enter(txn, State.DOCUMENT_PROBLEM)
            if attempts >= MAX_DOCUMENT_ATTEMPTS:
                raise _Ended("REFER", problem, State.REFERRED)
            read = self._wait(self.devices.document_reader.read, self.flow.document_timeout_s)
            if read is None:
                raise _abandon(Reason.WALKED_AWAY)

    def _chip(
        self, txn: _Transaction, mrz: Mrz, rules: PolicyRules
    ) -> tuple[ChipOutcome, ChipReadResult | None]:
        """Read and check the passport chip with the printed MRZ, unless the lane does not use chips.

        The read runs on its own thread (one exchange with the chip cannot be cut in slices), waited
        on like any device: a cancel is honoured at once. A passport lifted mid-read may be put back
        until ``chip_timeout_s``; a chip not seen within ``chip_presence_s`` is absent.
        """
        if rules.chip_required == "never":
            return ChipOutcome.absent(), None
        self._enter(txn, State.CHIP_READ)
        try:
            access_key(mrz)
        except ValueError:  # no valid dates in the print: nothing opens the chip
            return ChipOutcome(found=True), None
        chip = self.devices.chip
        trust = self.chip_trust()
        deadline = self.clock.monotonic() + self.flow.chip_timeout_s
        look_s, step = self.flow.chip_presence_s, ChipStep.KEEP_ON_READER
        found = False
        while True:
            # No progress figure while looking and reading: the screen shows an indeterminate bar
            # rather than a made-up percentage.
            self._emit("guidance", {"stage": str(State.CHIP_READ), "codes": [str(step)]})
            remaining = deadline - self.clock.monotonic()
            if not self._wait(lambda t: chip.wait_for_card(t) or None, min(look_s, remaining)):
                return (ChipOutcome(found=True) if found else ChipOutcome.absent()), None
            found = True
            self._emit("guidance", {"stage": str(State.CHIP_READ), "codes": [str(ChipStep.READING)]})

            def read() -> ChipReadResult:
                return read_document(chip, mrz, trust, self.clock.now())

            try:
                result = self._in_background(read, deadline - self.clock.monotonic())
            except ReaderUnavailableError:
                raise  # the reader itself is gone: out of service, as any failed device
            except NoCardError:
                look_s, step = deadline - self.clock.monotonic(), ChipStep.PUT_BACK
                continue
            except ChipError as exc:  # wrong MRZ for this chip, secure messaging broken, files missing
                log.info("chip not readable: %s", type(exc).__name__)
                return ChipOutcome(found=True), None
            if result is None:
                log.info("chip read took longer than %.1f s", self.flow.chip_timeout_s)
                return ChipOutcome(found=True), None
            self._emit(
                "guidance", {"stage": str(State.CHIP_READ), "codes": [str(ChipStep.DONE)], "progress": 1.0}
            )
            return ChipOutcome.from_read(result), result

    def _in_background(self, call: Callable[[], T], timeout_s: float) -> T | None:
        """``call`` on the engine's background thread, waited on in :meth:`_wait`'s slices (``None``
        past ``timeout_s``; an abandoned call finishes by itself and its result is dropped)."""
        future: Future[T] = self._background.submit(call)

        def poll(slice_s: float) -> T | None:
            try:
                return future.result(timeout=slice_s)
            except FutureTimeout:
                return None

        return self._wait(poll, timeout_s)

    def _reference_portrait(
        self, source: FaceReference, chip_read: ChipReadResult | None, read: Any, mrz: Mrz
    ) -> ReferencePortrait | None:
        if source is FaceReference.ENROLMENT:
            return self.enrolment.portrait(read, mrz)
        if source is FaceReference.CHIP_PORTRAIT and chip_read is not None and chip_read.portrait is not None:
            return ReferencePortrait(image=chip_read.portrait.pixels, source="chip")
        return None

    def _face(
        self, txn: _Transaction, portrait: ReferencePortrait | None, outcome: BiometricOutcome
    ) -> BiometricOutcome:
        assert self.matcher is not None
        if portrait is None or self.matcher.check_reference(portrait) is not None:
            return replace(outcome, portrait_available=False)
        deadline = self.clock.monotonic() + self.flow.face_timeout_s
        saw_face = False
        for _attempt in range(self.face.max_attempts):
            self._enter(txn, State.FACE_CAPTURE)
            observation: FaceObservation | None = None
            while self.clock.monotonic() < deadline:
                frame = self._wait(self.devices.camera.capture, min(1.0, deadline - self.clock.monotonic()))
                if frame is None:
                    continue
                if self._frame_sink is not None:
                    self._frame_sink(frame)
                candidate = self.matcher.observe(frame)
                saw_face = saw_face or candidate.face_present
                self._emit("guidance", {"codes": [str(g) for g in candidate.guidance]})
                if candidate.acquired:
                    observation = candidate
                    break
            if observation is None:
                if not saw_face:
                    raise _abandon(Reason.WALKED_AWAY)
                return replace(outcome, face_acquired=False)
            self._enter(txn, State.FACE_MATCH)
            txn.face_attempts += 1
            result = self.matcher.compare(observation, portrait)
            txn.face_score = result.score if txn.face_score is None else max(txn.face_score, result.score)
            txn.quality = {k: round(float(v), 4) for k, v in observation.quality.items()}
            del observation  # the aligned face must not outlive its use
            if result.matched:
                return replace(outcome, face_acquired=True, face_matched=True)
        return replace(outcome, face_acquired=True, face_matched=False)

    def _fingerprint(
        self, txn: _Transaction, read: Any, mrz: Mrz, outcome: BiometricOutcome
    ) -> BiometricOutcome:
        self._enter(txn, State.FINGERPRINT)
        template = self.enrolment.fingerprint_template(read, mrz)
        if template is None:
            return replace(outcome, enrolled_finger_available=False)
        acquired = False
        sensor = self.devices.fingerprint

        def verify(timeout_s: float) -> FingerprintResult | None:
            return sensor.verify(template, timeout_s)

        for _attempt in range(self.fingerprint.max_attempts):
            result = self._wait(verify, self.flow.fingerprint_timeout_s)
            if result is None:
                continue
            acquired = True
            txn.fingerprint_score = result.score
            if result.matched:
                return replace(outcome, fingerprint_acquired=True, fingerprint_matched=True)
        return replace(outcome, fingerprint_acquired=acquired, fingerprint_matched=False)

    def _passage(self, txn: _Transaction) -> tuple[str, list[Reason]]:
        gate = self.devices.gate
        self.doors.open_entry()
        self._enter(txn, State.ENTRY_OPEN)
        gate.set_signal(Signal.GO)
        event = self._next_lane_event(self.flow.entry_timeout_s)
        self.doors.close_entry()
        if event is None or event is LaneEvent.PERSON_RETREATED:
            gate.set_signal(Signal.READY)
            self._finish_state(txn, State.ABANDONED)
            return "ABANDONED", [Reason.DID_NOT_ENTER]
        if event is not LaneEvent.PERSON_ENTERED:
            return self._lane_incident(txn, event)

        self._enter(txn, State.PASSAGE)
        gate.set_signal(Signal.BUSY)
        # A second person shows up within the settle time, or never.
        event = self._next_lane_event(self.flow.passage_settle_s)
        if event is not None:
            return self._lane_incident(txn, event)

        self.doors.open_exit()
        self._enter(txn, State.EXIT_OPEN)
        event = self._next_lane_event(self.flow.exit_timeout_s)
        reasons: list[Reason] = []
        if event is not LaneEvent.PERSON_EXITED:
            # Never trap anyone: leave the exit free, tell the officers, and wait for the lane to clear.
            reasons.append(Reason.EXIT_TIMEOUT)
            self._alert("lane_not_cleared", {"event": str(event) if event else None})
        self._finish_state(txn, State.DONE)
        return "OPEN", reasons

    def _lane_incident(self, txn: _Transaction, event: LaneEvent) -> tuple[str, list[Reason]]:
        """Tailgating, a forced door or an emergency release during passage."""
        if event is LaneEvent.TAILGATING:
            # The door controller has raised the alarm. Send them back the way they came: the exit
            # stays locked, the entry opens for the retreat.
            self.doors.open_entry()
            self._next_lane_event(self.flow.passage_timeout_s)
            self.doors.close_entry()
            self._finish_state(txn, State.REFERRED)
            return "REFER", [Reason.TAILGATING]
        if event is LaneEvent.EMERGENCY_RELEASE:
            raise _OutOfService(Reason.DEVICE_FAILURE, "emergency release")
        if event is LaneEvent.DOOR_FORCED:
            raise _OutOfService(Reason.DEVICE_FAILURE, "door forced")
        self._finish_state(txn, State.ABANDONED)
        return "ABANDONED", [Reason.WALKED_AWAY]

    def _next_lane_event(self, timeout_s: float) -> LaneEvent | None:
        """The next lane event; the door controller supervises the doors and raises alarms meanwhile."""
        return self._wait(self.doors.wait_event, timeout_s, cancellable=False)

    def _drain_lane_events(self) -> None:
        """Between travellers nobody waits on the lane: let the controller see (and alarm on) it."""
        while self.doors.wait_event(0) is not None:
            pass

    def _door_alarm(self, alarm: DoorAlarm) -> None:
        self._alert(
            str(alarm.kind), {"door": str(alarm.door) if alarm.door else None, "detail": alarm.detail}
        )

    # --- plumbing ---------------------------------------------------------------------------------

    def _wait(
        self, call: Callable[[float], T | None], timeout_s: float, cancellable: bool = True
    ) -> T | None:
        """Call a device's wait in short slices so that a cancel is honoured promptly."""
        deadline = self.clock.monotonic() + timeout_s
        while True:
            if cancellable and self._cancel.is_set():
                raise _abandon(Reason.CANCELLED)
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return None
            result = call(min(POLL_S, remaining))
            if result is not None:
                return result

    def _enter(self, txn: _Transaction, state: State) -> None:
        self._close_stage(txn)
        self._set_state(state)
        txn.path.append(state)
        txn.stage_started = self.clock.monotonic()

    def _finish_state(self, txn: _Transaction, state: State) -> None:
        self._enter(txn, state)
        self._close_stage(txn)

    def _close_stage(self, txn: _Transaction) -> None:
        if txn.path and txn.path[-1] not in TERMINAL:
            name = str(txn.path[-1])
            elapsed_ms = (self.clock.monotonic() - txn.stage_started) * 1000.0
            txn.stage_ms[name] = round(txn.stage_ms.get(name, 0.0) + elapsed_ms, 3)

    def _set_state(self, state: State) -> None:
        with self._lock:
            if state is not self._state:
                check_transition(self._state, state)
                self._state = state
        self._emit("state", {})

    def _emit(self, kind: str, data: Mapping[str, Any]) -> None:
        event = FlowEvent(kind, self._state, self._txn.id if self._txn else None, data)
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                log.exception("flow observer failed")

    def _go_out_of_service(self, detail: str) -> None:
        self.doors.fail_safe()
        first = self._state is not State.OUT_OF_SERVICE
        if self._state is not State.OUT_OF_SERVICE:
            if self._txn is not None and self._txn.path and self._txn.path[-1] is not State.OUT_OF_SERVICE:
                self._close_stage(self._txn)
                self._txn.path.append(State.OUT_OF_SERVICE)
            self._set_state(State.OUT_OF_SERVICE)
        self.out_of_service_reason = detail
        if first:
            log.error("lane out of service: %s", detail)
            self._alert("out_of_service", {"detail": detail})
            self._emit("service", {"in_service": False})

    def _store_failed(self, exc: StoreError) -> None:
        self._store_fault = f"store: {exc}"
        self._go_out_of_service(self._store_fault)

    def _entry_unlocked(self) -> bool:
        try:
            return self.devices.gate.entry_unlocked()
        except DeviceError:
            return False

    def _alert(self, alert: str, data: Mapping[str, Any]) -> None:
        payload = {
            "alert": alert,
            "transaction_id": self._txn.id if self._txn else None,
            **data,
        }
        try:
            self.store.outbox.add("alert", payload, training=self.training)
        except StoreError as exc:
            log.error("could not record alert %s: %s", alert, exc)

    def _record(self, txn: _Transaction, outcome: TransactionOutcome) -> None:
        mrz, assessment = txn.mrz, txn.assessment
        record = FinishedTransaction(
            id=txn.id,
            decision=outcome.decision,
            reasons=tuple(outcome.reasons),
            stage_ms=dict(outcome.stage_ms),
            path=tuple(outcome.path),
            document_format=str(mrz.format) if mrz else None,
            nationality=mrz.nationality if mrz else None,
            entitlement=assessment.entitlement if assessment else None,
            document_pseudonym=txn.document_pseudonym,
            face_score=txn.face_score,
            face_attempts=txn.face_attempts,
            face_quality=txn.quality,
            fingerprint_score=txn.fingerprint_score,
        )
        try:
            self.store.transactions.finish(record)
            if self.referrals is not None and mrz is not None and outcome.decision == "REFER":
                self.referrals.keep(txn.id, mrz, outcome.reasons)
        except StoreError as exc:
            # The row stays in_progress and is marked aborted at the next start: nothing is lost silently.
            self._store_failed(exc)
