"""The composition root: the one place that turns a configuration into a running lane."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

from common.clock import Clock, SimulatedClock
from common.pinhash import PinHash, hash_pin
from config import Config, ConfigError
from drivers.interfaces import Camera, ChipReader, Device, DocumentReader, FingerprintSensor, Gate
from drivers.registry import BackendSection
from drivers.simulated.lane import (
    SimulatedCamera,
    SimulatedChipReader,
    SimulatedDocumentReader,
    SimulatedFingerprintSensor,
    SimulatedGate,
    SimulatedLane,
    fingerprint_template,
)
from kiosk.at_rest import check_private, database_files, private_dir
from kiosk.chip.trust_source import TrustCache
from kiosk.enrolment import EnrolmentProvider, NoEnrolment
from kiosk.flow.engine import Devices, LaneEngine
from kiosk.flow.runner import LaneRunner
from kiosk.ledger.device_key import load_device_key
from kiosk.ledger.startup import check_at_start
from kiosk.pinlock import DEMO_PIN, Lockout, PinLock
from kiosk.privacy import FleetKeyError, IdentifierHasher, load_fleet_key
from kiosk.pseudonyms import Pseudonymiser
from kiosk.referrals import ReferralVault
from kiosk.remote import HubDesk
from kiosk.sealing import Sealer, load_data_key
from kiosk.simulation.enrolment import SimulatedEnrolment
from kiosk.simulation.passports import PassportOffice
from kiosk.simulation.population import FaceImages
from kiosk.simulation.realtime import RealTimeLane
from kiosk.simulation.seeding import refuse_production
from kiosk.simulation.world import Breakable, SimulatedWorld
from kiosk.store import Store
from models.matching import FaceMatcher, ModelUnavailable
from models.simulated import SimulatedFaceMatcher

D = TypeVar("D", bound=Device)
log = logging.getLogger(__name__)


def kiosk_version() -> str:
    try:
        return version("gerbang")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class Kiosk:
    config: Config
    store: Store
    engine: LaneEngine
    hasher: IdentifierHasher | None  # None: no usable fleet key, and the lane stays out of service
    clock: Clock
    lane: SimulatedLane  # the simulated world in front of the kiosk (travellers, portraits)

    def close(self) -> None:
        self.engine.close()
        for device in self.engine.devices.all():
            device.close()
        self.store.close()


def _real(key: str, section: BackendSection, build: Callable[[], D]) -> D:
    try:
        return build()
    except ValueError as exc:  # what the file cannot say, e.g. a camera source that is not there
        raise ConfigError(f"key 'devices.{key}' ({section.backend}): {exc}") from None


def _lane_camera(config: Config) -> bool:
    """The in-process camera whose frames name the simulated traveller (a "file" camera plays files
    through the real watchdog instead)."""
    return config.devices.camera.backend == "simulated"


def build_devices(config: Config, lane: SimulatedLane, faces: FaceImages | None = None) -> Devices:
    """Each device from its section: "simulated" is the in-process world, anything else real code
    (on real hardware, or on a wire-protocol simulator behind a pty). With ``faces`` the in-process
    camera shows the travellers' real faces."""
    # Imported here: a kiosk on simulated devices loads no serial, camera or Modbus stack.
    from drivers import gate
    from drivers.camera import factory as camera
    from drivers.chip import factory as chip
    from drivers.docreader import reader as docreader
    from drivers.fingerprint import factory as fingerprint

    sections = config.devices
    opened: list[Device] = []

    def keep(device: D) -> D:
        opened.append(device)
        return device

    try:
        reader: DocumentReader = keep(
            SimulatedDocumentReader(lane)
            if sections.document_reader.backend == "simulated"
            else _real(
                "document_reader", sections.document_reader, lambda: docreader.build(sections.document_reader)
            )
        )
        chip_reader: ChipReader = keep(
            SimulatedChipReader(lane)
            if sections.chip.backend == "simulated"
            else _real("chip", sections.chip, lambda: chip.build(sections.chip))
        )
        cam: Camera = keep(
            SimulatedCamera(lane, faces)
            if _lane_camera(config)
            else _real(
                "camera", sections.camera, lambda: camera.build(sections.camera, base_dir=config.base_dir)
            )
        )
        sensor: FingerprintSensor = keep(
            SimulatedFingerprintSensor(lane)
            if sections.fingerprint.backend == "simulated"
            else _real("fingerprint", sections.fingerprint, lambda: fingerprint.build(sections.fingerprint))
        )
        lane_gate: Gate = keep(
            SimulatedGate(lane)
            if sections.gate.backend == "simulated"
            else _real("gate", sections.gate, lambda: gate.build(sections.gate))
        )
    except BaseException:
        for device in opened:
            device.close()
        raise
    return Devices(document_reader=reader, chip=chip_reader, camera=cam, fingerprint=sensor, gate=lane_gate)


def _face_images(config: Config) -> FaceImages | None:
    folder = config.simulation.face_images
    if folder is None:
        return None
    try:
        return FaceImages(Config._resolve(config.base_dir, folder), config.simulation.seed)
    except ValueError as exc:
        raise ConfigError(f"simulation.face_images: {exc}") from None


def build_face_matcher(config: Config) -> FaceMatcher | None:
    """The configured face matcher, or ``None`` when the ONNX models cannot be used: the engine then
    keeps the lane out of service ("face model unavailable"), and the reason is logged here."""
    face = config.face
    if face.backend == "simulated":
        return SimulatedFaceMatcher(face.threshold)
    # Imported here: onnxruntime loads only on a kiosk that matches real faces.
    from models.model_files import default_model_dir
    from models.onnx_matcher import OnnxFaceMatcher
    from models.pipeline import PipelineSettings

    try:
        settings = PipelineSettings(
            detect_min_face_px=face.detect_min_face_px,
            detect_max_face_px=face.detect_max_face_px,
            rival_area_ratio=face.rival_area_ratio,
            flip_augment=face.flip_augment,
            precision=face.precision,
            operating_point=face.operating_point,
        )
    except ValueError as exc:
        raise ConfigError(f"face: {exc}") from None
    model_dir = default_model_dir()
    if face.model_dir is not None:
        model_dir = Config._resolve(config.base_dir, face.model_dir)
    try:
        return OnnxFaceMatcher(model_dir, threads=face.threads, settings=settings)
    except ModelUnavailable as exc:
        log.error("face model unavailable: %s", exc)
        return None


def fleet_hasher(config: Config, store: Store, *, create: bool) -> IdentifierHasher | None:
    """The hasher under the fleet key, or ``None`` when there is no usable key: the engine then keeps
    the lane out of service (``NO_FLEET_KEY``), and the problem is logged and audited here."""
    try:
        return IdentifierHasher(load_fleet_key(config.fleet_key_path, create=create))
    except FleetKeyError as exc:
        log.error("no usable fleet key, the lane stays out of service: %s", exc)
        store.outbox.add("audit", {"audit": "fleet_key_missing", "detail": str(exc)})
        return None


def build_kiosk(
    config: Config,
    *,
    store_path: Path | None = None,
    lane: SimulatedLane | None = None,
    fingerprint_templates: Callable[[int], bytes] = fingerprint_template,
    simulated_travellers: bool = True,
    simulation: bool | None = None,
) -> Kiosk:
    """Build the lane from ``config``. Raises ConfigError, StoreError, DataKeyError, DeviceKeyError or
    ExposedDataError (a database or key open to other users).

    Only a simulation - simulated travellers in front of simulated devices (``simulation``; by default
    ``simulated_travellers`` and every device section simulated) - may create its own fleet key. Any
    other kiosk without its provisioned key is built, but stays out of service and says why. The audit
    ledger is verified here too; one that does not verify leaves the engine out of service.

    The devices may be in-process simulations or real drivers (on real hardware or on their
    wire-protocol simulators). With ``simulated_travellers`` the people at the gate are the simulated
    world's: their passports carry test chips on the in-process chip slot, and the simulated enrolment
    gives the references a lane without chips uses. Real travellers' face reference is the portrait on
    their passport chip, so they need a chip reader (``[devices.chip]`` "pcsc", or "vpcd" with the
    chip simulator): nothing else knows their faces.
    """
    if not simulated_travellers and config.devices.chip.backend == "simulated":
        raise ConfigError(
            "serving real travellers needs their reference portrait from the passport chip, and the "
            'in-process chip slot only holds simulated passports: set [devices.chip] backend = "pcsc" '
            '(a PC/SC contactless reader) or "vpcd" (the chip simulator)'
        )
    faces = _face_images(config)
    if config.face.backend == "onnx" and faces is None and _lane_camera(config):
        raise ConfigError(
            "face.backend = 'onnx' needs faces to look at: set simulation.face_images (or a \"file\" camera)"
        )
    matcher = build_face_matcher(config)
    # The data directory is the kiosk's own; an explicitly placed database must already have its home.
    private_dir(config.data_dir)
    path = store_path or config.store_path
    check_private(database_files(path))
    store = Store.open(path)
    try:
        if simulated_travellers:
            # Before anything is written: a simulated population's data must never replace the hub's.
            refuse_production(store, path)
        if simulation is None:
            simulation = simulated_travellers and config.simulated
        # First: it makes the keys directory 0700 before any key is written into it.
        data_key = load_data_key(config.data_key_path)
        hasher = fleet_hasher(config, store, create=simulation)
        if config.fleet_key_path.exists():
            check_private((config.fleet_key_path,))
        if lane is None:
            lane = SimulatedLane(SimulatedClock(), config.simulation.device_delay_s)
        enrolment: EnrolmentProvider = NoEnrolment()
        if simulated_travellers:
            enrolment = SimulatedEnrolment(lane, fingerprint_templates, faces)
            if lane.passport_of is None:
                lane.passport_of = PassportOffice(faces).passport_of
        devices = build_devices(config, lane, faces)
        pseudonyms = Pseudonymiser(config.pseudonym_key_dir, config.privacy.pseudonym_epoch_s, lane.clock.now)
        vault = ReferralVault(store, Sealer(data_key)) if config.privacy.keep_referral_details else None
        engine = LaneEngine(
            devices=devices,
            matcher=matcher,
            enrolment=enrolment,
            chip_trust=TrustCache(store, config).current,
            store=store,
            hasher=hasher,
            pseudonyms=pseudonyms,
            clock=lane.clock,
            flow=config.flow,
            face=config.face,
            fingerprint=config.fingerprint,
            doors=config.doors,
            versions={
                "kiosk": kiosk_version(),
                "config": config.version(),
                "model": matcher.model_version if matcher is not None else "unavailable",
            },
            training=config.kiosk.training,
            desk=HubDesk(store, heartbeat_s=config.agent.heartbeat_s),
            referrals=vault,
        )
        device_key = load_device_key(config.device_key_path)
        check_private((config.device_key_path,))
        engine.ledger_problem = check_at_start(store, device_key).problem
    except BaseException:
        store.close()
        raise
    return Kiosk(config=config, store=store, engine=engine, hasher=hasher, clock=lane.clock, lane=lane)


@dataclass
class ServedLane:
    """A kiosk with its run loop, the staff's way into maintenance, and the simulated world in front of
    it when every device is simulated."""

    kiosk: Kiosk
    runner: LaneRunner
    pin: PinLock
    world: SimulatedWorld | None


def maintenance_pin(kiosk: Kiosk, *, simulated: bool) -> PinLock:
    ui = kiosk.config.ui
    expected = None if ui.maintenance_pin_hash is None else PinHash.parse(ui.maintenance_pin_hash)
    if expected is None and simulated:
        expected = PinHash.parse(hash_pin(DEMO_PIN))
        log.warning("no maintenance PIN configured: this simulated kiosk accepts the demo PIN %s", DEMO_PIN)
    engine = kiosk.engine
    return PinLock(
        kiosk.store,
        expected,
        Lockout(
            max_failures=ui.maintenance_max_failures,
            first_s=ui.maintenance_lockout_min * 60,
            max_s=ui.maintenance_lockout_max_min * 60,
        ),
        now=time.time,
        training=lambda: engine.training,
    )


@contextmanager
def served_lane(config: Config, *, db: Path | None = None, seed: int = 1) -> Iterator[ServedLane]:
    """The lane for people to watch (the touchscreen): in-process devices at human pace, a world to
    populate, and a run loop that is started by whoever shows the lane (and stopped here at the end)."""
    lane = RealTimeLane(SimulatedClock(), config.ui.simulated_device_delay_s)
    # Without a simulated world in front of it, the people at the gate are real.
    kiosk = build_kiosk(config, store_path=db, lane=lane, simulated_travellers=config.simulated)
    try:
        kiosk.engine.start()
        world = None
        if config.simulated:
            assert kiosk.hasher is not None  # an all-simulated kiosk makes its own key
            breakable = [d for d in kiosk.engine.devices.all() if isinstance(d, Breakable)]
            world = SimulatedWorld(lane, breakable, kiosk.store, kiosk.hasher, seed)
        # The simulated traveller walks off once the engine is done with them.
        runner = LaneRunner(kiosk.engine, after_transaction=(lambda _o: world.leave()) if world else None)
        try:
            pin = maintenance_pin(kiosk, simulated=world is not None)
            yield ServedLane(kiosk=kiosk, runner=runner, pin=pin, world=world)
        finally:
            runner.stop()
    finally:
        kiosk.close()
