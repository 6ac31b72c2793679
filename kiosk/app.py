"""The composition root: the one place that turns a configuration into a running lane."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from drivers.simulated.lane import (
    SimulatedCamera,
    SimulatedDocumentReader,
    SimulatedFingerprintSensor,
    SimulatedGate,
    SimulatedLane,
)
from kiosk.clock import Clock, SimulatedClock
from kiosk.config import Config
from kiosk.flow.engine import Devices, LaneEngine
from kiosk.privacy import IdentifierHasher, load_fleet_key
from kiosk.simulation.references import SimulatedReferences
from kiosk.store import Store
from models.simulated import SimulatedFaceMatcher


def kiosk_version() -> str:
    try:
        return version("gerbang")
    except PackageNotFoundError:
        return "0+unknown"


class UnsupportedBackend(RuntimeError):
    pass


@dataclass
class Kiosk:
    config: Config
    store: Store
    engine: LaneEngine
    hasher: IdentifierHasher
    clock: Clock
    lane: SimulatedLane | None  # the simulated world, when the devices are simulated

    def close(self) -> None:
        for device in self.engine.devices.all():
            device.close()
        self.store.close()


def build_kiosk(config: Config, *, store_path: Path | None = None) -> Kiosk:
    """Build the lane from ``config``. Raises StoreError, FleetKeyError or UnsupportedBackend."""
    if not config.simulated:
        # The wire-protocol drivers arrive with the drivers issue; refuse rather than pretend.
        raise UnsupportedBackend("only the simulated device backends are available in this build")
    # The data directory is the kiosk's own; an explicitly placed database must already have its home.
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(store_path or config.store_path)
    try:
        key = load_fleet_key(config.fleet_key_path, create=config.simulated)
        clock = SimulatedClock()
        lane = SimulatedLane(clock, config.simulation.device_delay_s)
        devices = Devices(
            document_reader=SimulatedDocumentReader(lane),
            camera=SimulatedCamera(lane),
            fingerprint=SimulatedFingerprintSensor(lane),
            gate=SimulatedGate(lane),
        )
        matcher = SimulatedFaceMatcher(config.face.threshold)
        hasher = IdentifierHasher(key)
        engine = LaneEngine(
            devices=devices,
            matcher=matcher,
            references=SimulatedReferences(lane),
            store=store,
            hasher=hasher,
            clock=clock,
            flow=config.flow,
            face=config.face,
            fingerprint=config.fingerprint,
            versions={
                "kiosk": kiosk_version(),
                "config": config.version(),
                "model": matcher.model_version,
            },
            training=config.kiosk.training,
        )
    except BaseException:
        store.close()
        raise
    return Kiosk(config=config, store=store, engine=engine, hasher=hasher, clock=clock, lane=lane)
