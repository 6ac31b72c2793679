"""The composition root: the one place that turns a configuration into a running lane."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

from drivers.interfaces import Camera, Device, DocumentReader, FingerprintSensor, Gate
from drivers.simulated.lane import (
    SimulatedCamera,
    SimulatedDocumentReader,
    SimulatedFingerprintSensor,
    SimulatedGate,
    SimulatedLane,
    fingerprint_template,
)
from kiosk.clock import Clock, SimulatedClock
from kiosk.config import Config, ConfigError, DeviceSection
from kiosk.flow.engine import Devices, LaneEngine
from kiosk.privacy import IdentifierHasher, load_fleet_key
from kiosk.remote import HubDesk
from kiosk.simulation.population import FaceImages
from kiosk.simulation.references import SimulatedReferences
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
    hasher: IdentifierHasher
    clock: Clock
    lane: SimulatedLane  # the simulated world in front of the kiosk (travellers, portraits)

    def close(self) -> None:
        for device in self.engine.devices.all():
            device.close()
        self.store.close()


def _real(key: str, section: DeviceSection, build: Callable[[], D]) -> D:
    try:
        return build()
    except ConfigError:
        raise
    except ValueError as exc:  # drivers name the bad option; say which device it belongs to
        raise ConfigError(f"devices.{key} ({section.backend}): {exc}") from None


def _lane_camera(config: Config) -> bool:
    """A "simulated" camera with a source plays files through the real watchdog; without one it is
    the in-process lane camera whose frames name the simulated traveller."""
    camera = config.devices.camera
    return camera.backend == "simulated" and not camera.options.get("source")


def build_devices(config: Config, lane: SimulatedLane, faces: FaceImages | None = None) -> Devices:
    """Each device from its section: "simulated" is the in-process world, anything else real code
    (on real hardware, or on a wire-protocol simulator behind a pty). With ``faces`` the in-process
    camera shows the travellers' real faces."""
    from drivers import camera, docreader, fingerprint, gate

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
    return Devices(document_reader=reader, camera=cam, fingerprint=sensor, gate=lane_gate)


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


def build_kiosk(
    config: Config,
    *,
    store_path: Path | None = None,
    lane: SimulatedLane | None = None,
    fingerprint_templates: Callable[[int], bytes] = fingerprint_template,
    simulated_travellers: bool = True,
) -> Kiosk:
    """Build the lane from ``config``. Raises ConfigError, StoreError or FleetKeyError.

    Travellers are simulated in this build (the reference portrait and finger come from the
    simulated traveller); the devices may be in-process simulations or real drivers — on real
    hardware or on their wire-protocol simulators.
    """
    if not simulated_travellers:
        raise ConfigError(
            "serving real travellers needs a reference-portrait source (the ePassport chip), "
            "which this build does not have yet"
        )
    faces = _face_images(config)
    if config.face.backend == "onnx" and faces is None and _lane_camera(config):
        raise ConfigError(
            "face.backend = 'onnx' needs faces to look at: set simulation.face_images (or a camera source)"
        )
    matcher = build_face_matcher(config)
    # The data directory is the kiosk's own; an explicitly placed database must already have its home.
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(store_path or config.store_path)
    try:
        key = load_fleet_key(config.fleet_key_path, create=simulated_travellers)
        if lane is None:
            lane = SimulatedLane(SimulatedClock(), config.simulation.device_delay_s)
        devices = build_devices(config, lane, faces)
        hasher = IdentifierHasher(key)
        engine = LaneEngine(
            devices=devices,
            matcher=matcher,
            references=SimulatedReferences(lane, fingerprint_templates, faces),
            store=store,
            hasher=hasher,
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
        )
    except BaseException:
        store.close()
        raise
    return Kiosk(config=config, store=store, engine=engine, hasher=hasher, clock=lane.clock, lane=lane)
