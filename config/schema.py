"""The schema of the one configuration file: every section, its keys and their defaults.

Every setting has a default that runs the simulated kiosk, so an empty file is a valid config. The
``[devices.*]`` sections are discriminated unions on ``backend``, assembled from the sections the
driver packages register (:mod:`drivers.registry`): the schema knows the drivers, never the reverse.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.pinhash import PinHash
from contract.broker import check_transport
from drivers.registry import BackendSection, backends

SECRET_KEYS = frozenset({"password", "pin", "key", "secret", "token"})


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]


class KioskSection(Section):
    id: str = Field("kiosk-sim-01", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    site: str = Field("lampung-barat", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    # Where the database, keys and logs live; relative paths are resolved against the config file.
    data_dir: Path = Path("var")
    training: bool = False

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == "sync":  # gerbang/v1/{site}/sync/... is the site's reference-data channel
            raise ValueError("'sync' is reserved and cannot be a kiosk id")
        return value


class StoreSection(Section):
    path: Path = Path("gerbang.sqlite3")  # relative to kiosk.data_dir


class SecuritySection(Section):
    # Relative to kiosk.data_dir. Only an all-simulated kiosk may create its own; a kiosk with real
    # devices must be provisioned with the fleet's key or its hashes would match nothing.
    fleet_key_file: Path = Path("keys/fleet.key")
    # Relative to kiosk.data_dir: the device's Ed25519 key that signs the audit ledger's heads
    # (kiosk.ledger.device_key); created 0600 on first start when absent.
    device_key_file: Path = Path("keys/device_ed25519.pem")


DEVICES = ("document_reader", "camera", "fingerprint", "gate", "chip")


def device_section(device: str) -> Any:
    """``[devices.<device>]``: one of the backends its driver package registered, chosen by ``backend``."""
    members = tuple(backends(device).values())
    return Annotated[Union[members], Field(discriminator="backend")]  # noqa: UP007 -- built at run time


def _simulated(device: str) -> BackendSection:
    return backends(device)["simulated"]()


DocumentReaderSection = device_section("document_reader")
CameraSection = device_section("camera")
FingerprintSection = device_section("fingerprint")
GateSection = device_section("gate")
ChipSection = device_section("chip")


class DevicesSection(Section):
    document_reader: DocumentReaderSection = Field(default_factory=lambda: _simulated("document_reader"))
    camera: CameraSection = Field(default_factory=lambda: _simulated("camera"))
    fingerprint: FingerprintSection = Field(default_factory=lambda: _simulated("fingerprint"))
    gate: GateSection = Field(default_factory=lambda: _simulated("gate"))
    # The ePassport chip reader: "simulated" (in process), "vpcd" (the simulator over PC/SC) or "pcsc".
    chip: ChipSection = Field(default_factory=lambda: _simulated("chip"))

    @model_validator(mode="before")
    @classmethod
    def _simulated_unless_said(cls, data: Any) -> Any:
        # A device table without a backend is the simulated device, as an absent table is.
        if isinstance(data, dict):
            return {
                key: {"backend": "simulated", **value}
                if isinstance(value, dict) and "backend" not in value
                else value
                for key, value in data.items()
            }
        return data

    def all(self) -> tuple[BackendSection, ...]:
        return tuple(getattr(self, device) for device in DEVICES)


class FaceSection(Section):
    backend: Literal["simulated", "onnx"] = "simulated"
    # Similarity score at or above which two faces are taken as the same person. For the
    # simulated matcher; the ONNX pipeline reads its calibrated operating point from its manifest.
    threshold: float = Field(0.6, ge=0.0, le=1.0)
    max_attempts: int = Field(3, ge=1, le=10)
    # The "onnx" pipeline. Models as `python -m models build` writes them; a relative path resolves
    # against the config file; unset, the build's own output directory (<repo>/var/models).
    model_dir: Path | None = None
    threads: int = Field(2, ge=1, le=8)  # onnxruntime threads per model
    # Which calibrated operating point of the ResNet manifest decides: the target false-match rate.
    operating_point: str = Field("fmr_1e-3", pattern=r"^fmr_[0-9]e-[0-9]+$")
    # Detector box sizes (px) searched in camera frames: the detector's 80 px window up to the frame
    # height. Wider than the face sizes the capture accepts, so that a traveller too far away or too
    # close is told to move rather than not seen.
    detect_min_face_px: float = Field(80.0, ge=20, le=2000)
    detect_max_face_px: float = Field(480.0, ge=40, le=4000)
    # A second face at least this fraction of the traveller's (by area) means "one person at a time".
    rival_area_ratio: float = Field(0.6, gt=0, le=1)
    # Describe the chip and its mirror image and average the two: steadier scores for twice the
    # descriptor time. The calibrated thresholds hold only for the setting they were calibrated with.
    flip_augment: bool = True
    # The descriptor ResNet: "int8" is its quantized copy (`python -m models build` makes it from the
    # committed calibration ranges), faster on a Pi and calibrated separately; "fp32" the converted
    # model itself. int8 is the default because its FNMR at FMR 1e-3 is within 0.2 percentage points
    # of fp32's (models/calibration).
    precision: Literal["fp32", "int8"] = "int8"


class FingerprintPolicySection(Section):
    # The match threshold belongs to the sensor (devices.fingerprint.options.threshold): one truth.
    max_attempts: int = Field(3, ge=1, le=10)


class FlowSection(Section):
    """How long the engine waits at each step before it gives up on the traveller."""

    document_timeout_s: PositiveSeconds = 30.0
    # The passport chip: how long to look for one once the MRZ is read (a passport on the reader is in
    # its field at once: a chip not seen by then is taken as absent), and the most a whole read may take,
    # including waiting for a passport lifted mid-read to be put back.
    chip_presence_s: PositiveSeconds = 2.0
    chip_timeout_s: PositiveSeconds = 10.0
    face_timeout_s: PositiveSeconds = 20.0
    fingerprint_timeout_s: PositiveSeconds = 20.0
    entry_timeout_s: PositiveSeconds = 15.0
    passage_timeout_s: PositiveSeconds = 20.0
    exit_timeout_s: PositiveSeconds = 15.0
    # How long the lane watches for a second person after the first has entered, before the exit opens.
    passage_settle_s: float = Field(1.0, ge=0, le=30)


class DoorsSection(Section):
    """Backstops for a stalled lane: alarms (and a relock once the lane is empty) past these."""

    entry_unlocked_max_s: PositiveSeconds = 30.0
    exit_unlocked_max_s: PositiveSeconds = 60.0
    door_open_max_s: PositiveSeconds = 30.0


class SimulationSection(Section):
    seed: int = 1
    # Extra simulated time each device takes (seconds), to rehearse realistic lane timing.
    device_delay_s: float = Field(0.0, ge=0, le=30)
    # Real face photos laid out like LFW (<Person>/<Person>_NNNN.jpg): each simulated traveller then
    # has a real face, the document portrait and the camera showing two photos of one person (an
    # impostor's camera another person). Relative to the config file. Unset: faces are simulated.
    face_images: Path | None = None


class UiSection(Section):
    """The touchscreen: display geometry, languages, timings and the maintenance PIN."""

    # Physical pixel density, for touch targets sized in millimetres (12 mm minimum).
    dpi: float = Field(96.0, gt=0, le=1000)
    # Display rotation in degrees; Kivy rotates the touch coordinates along with the picture.
    rotation: Literal[0, 90, 180, 270] = 0
    fullscreen: bool = True
    # Window size when not fullscreen (a desk test, or the offscreen renderer), in pixels.
    window_size: tuple[Annotated[int, Field(ge=320, le=8192)], Annotated[int, Field(ge=240, le=8192)]] = (
        1080,
        1920,
    )
    language: Literal["id", "en", "zh_CN"] = "id"  # the language each traveller starts in
    spoken_prompts: bool = False
    # scrypt hash of the maintenance PIN (common.pinhash; `python -m kiosk pin-hash` makes one).
    # Unset: maintenance mode only opens on a simulated kiosk.
    maintenance_pin_hash: str | None = None
    maintenance_max_failures: int = Field(5, ge=1, le=20)
    # The first lockout; each further one (without a success between) doubles, up to the cap.
    maintenance_lockout_min: float = Field(1.0, gt=0, le=1440)
    maintenance_lockout_max_min: float = Field(60.0, gt=0, le=1440)
    # Seconds without a touch before "are you still there?", then its countdown before the reset.
    inactivity_s: PositiveSeconds = 30.0
    inactivity_countdown_s: PositiveSeconds = 10.0
    feedback_s: PositiveSeconds = 12.0  # the after-passage rating dismisses itself
    go_hold_s: PositiveSeconds = 4.0  # least time "go ahead" stays up, while the lane is free
    officer_hold_s: PositiveSeconds = 12.0
    help_hold_s: PositiveSeconds = 20.0
    # Pace of the in-process simulated devices in the UI, so that a person can follow the flow.
    simulated_device_delay_s: float = Field(1.0, ge=0, le=30)
    simulation_panel: bool = True  # the traveller injector beside a simulated lane

    @model_validator(mode="before")
    @classmethod
    def _no_legacy_pin(cls, data: Any) -> Any:
        if isinstance(data, dict) and "maintenance_pin_sha256" in data:
            raise ValueError(
                "maintenance_pin_sha256 is no longer accepted: an unsalted SHA-256 of a short PIN is "
                "reversed in a fraction of a second. Re-hash the PIN (at least 6 digits) with "
                "`python -m kiosk pin-hash` and set maintenance_pin_hash to what it prints"
            )
        return data

    @field_validator("maintenance_pin_hash")
    @classmethod
    def _pin_hash(cls, value: str | None) -> str | None:
        if value is not None:
            PinHash.parse(value)  # its ValueError names the format and how to make one
        return value

    @model_validator(mode="after")
    def _lockout_cap(self) -> UiSection:
        if self.maintenance_lockout_max_min < self.maintenance_lockout_min:
            raise ValueError("maintenance_lockout_max_min must not be below maintenance_lockout_min")
        return self


class TlsSection(Section):
    # All relative to kiosk.data_dir. A CA file turns on TLS with server verification; a client
    # certificate + key add mutual TLS. There is deliberately no "skip verification" switch.
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("a client certificate needs ca_file: no mutual TLS without server verification")
        return self


class AgentSection(Section):
    """The edge agent (``python -m edge_agent``): broker, credentials, cadence and retention."""

    broker: str = Field("mqtt://127.0.0.1:1883", pattern=r"^mqtts?://[^/\s]+$")
    # MQTT 5 by default: only v5 PUBACKs carry a refusal (e.g. "not authorised"), so only then can an
    # event the broker dropped stay pending; under 3.1.1 an ACL-refused publish is acknowledged and lost.
    mqtt_version: Literal["3.1.1", "5"] = "5"
    keepalive_s: int = Field(30, ge=5, le=3600)
    username: str | None = None
    password_file: Path | None = None  # relative to kiosk.data_dir; the password never sits in the config
    tls: TlsSection = TlsSection()
    # The hub's Ed25519 public keys: one signs commands, one signs reference-data bundles.
    command_key_file: Path | None = None
    sync_key_file: Path | None = None
    command_freshness_s: float = Field(60.0, ge=5, le=3600)
    state_interval_s: PositiveSeconds = 60.0
    metrics_interval_s: PositiveSeconds = 60.0
    # The kiosk process writes a heartbeat this often; the agent calls it down after 3 missed beats.
    heartbeat_s: PositiveSeconds = 10.0
    # Delivered events are deleted after this many days (undelivered ones are never deleted).
    outbox_retention_days: float = Field(30.0, gt=0, le=3650)
    backoff_initial_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    # Plain mqtt:// to anything but loopback: events and commands in clear on the network. For a lab
    # bench only; the agent logs a warning at every start while it is set.
    insecure_plain_mqtt_lab_only: bool = False

    @model_validator(mode="after")
    def _transport(self) -> AgentSection:
        check_transport(
            self.broker,
            sends_password=self.password_file is not None,
            plain_allowed_off_loopback=self.insecure_plain_mqtt_lab_only,
        )
        return self


class PrivacySection(Section):
    """Personal data on the device and in telemetry: pseudonyms, sealed referrals, retention
    (kiosk.pseudonyms, kiosk.referrals, kiosk.store.retention; docs/privacy.md)."""

    # How long one document keeps one pseudonym on this kiosk; its key is destroyed afterwards.
    # Bounded: a longer epoch links more of one traveller's crossings at the hub.
    pseudonym_epoch_s: int = Field(86_400, ge=3_600, le=7 * 86_400)
    pseudonym_key_dir: Path = Path("keys/pseudonym")  # relative to kiosk.data_dir

    # Keep a referred traveller's MRZ details for the officer, sealed (AES-GCM) under the device's data
    # key; off, nothing personal is stored at all. Only the technician's file sets it, never the hub.
    keep_referral_details: bool = False
    # Relative to kiosk.data_dir: the device's own AES key, made on first start.
    data_key_file: Path = Path("keys/data.key")
    # Transactions, sealed referrals and hub requests are deleted this many days after the hub has
    # stored the events that report them; undelivered ones are never deleted.
    retention_days: int = Field(30, ge=1, le=365)


class SafetySection(Section):
    """``[safety]``: floors and ceilings that no signed bundle from the hub can go past.

    One stolen or misused sync key must not lower the guard of a whole fleet: a ``policy`` or ``config``
    bundle past any of these is refused as a whole (config.floors, kiosk.safety_floors). Only the
    technician's own file sets them; they bind what the hub sends, not what this file says.
    """

    # A policy may turn the face check on, never off.
    face_match_required: bool = True
    # The least use of the passport chip a policy may ask for (never < if_present < always).
    min_chip_required: Literal["never", "if_present", "always"] = "if_present"
    # A policy may raise the minimum traveller age, never lower it below this (safeguarding minors).
    min_age_years: int = Field(14, ge=0, le=120)
    # Fleet settings: more attempts or a looser operating point give an impostor more chances.
    max_face_attempts: int = Field(3, ge=1, le=10)
    max_fingerprint_attempts: int = Field(3, ge=1, le=10)
    # The loosest false-match rate face.operating_point may name.
    max_face_fmr: float = Field(1e-3, gt=0, le=1)
    # The door backstops (doors.*): an alarm later than this leaves a held door unnoticed.
    max_door_backstop_s: PositiveSeconds = 120.0
    # Privacy: how long delivered events may stay on the device.
    max_outbox_retention_days: float = Field(90.0, gt=0, le=3650)
    # Security: how old a signed command may be and still be obeyed (a longer window helps a replay).
    max_command_freshness_s: float = Field(300.0, ge=5, le=3600)


class Config(Section):
    kiosk: KioskSection = KioskSection()
    store: StoreSection = StoreSection()
    security: SecuritySection = SecuritySection()
    devices: DevicesSection = DevicesSection()
    face: FaceSection = FaceSection()
    fingerprint: FingerprintPolicySection = FingerprintPolicySection()
    flow: FlowSection = FlowSection()
    doors: DoorsSection = DoorsSection()
    simulation: SimulationSection = SimulationSection()
    ui: UiSection = UiSection()
    agent: AgentSection = AgentSection()
    privacy: PrivacySection = PrivacySection()
    safety: SafetySection = SafetySection()

    # Not part of the file: where it came from, so relative paths resolve against it.
    base_dir: Path = Field(default=Path("."), exclude=True)
    # Not part of the file: the version of the hub's settings bundle merged over it, if any.
    hub_settings_version: str | None = Field(default=None, exclude=True)

    @field_validator("base_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    @property
    def data_dir(self) -> Path:
        return self._resolve(self.base_dir, self.kiosk.data_dir)

    @property
    def store_path(self) -> Path:
        return self._resolve(self.data_dir, self.store.path)

    @property
    def fleet_key_path(self) -> Path:
        return self._resolve(self.data_dir, self.security.fleet_key_file)

    @property
    def pseudonym_key_dir(self) -> Path:
        return self._resolve(self.data_dir, self.privacy.pseudonym_key_dir)

    @property
    def data_key_path(self) -> Path:
        return self._resolve(self.data_dir, self.privacy.data_key_file)

    @property
    def device_key_path(self) -> Path:
        return self._resolve(self.data_dir, self.security.device_key_file)

    def data_path(self, path: Path | None) -> Path | None:
        """A path from the file, resolved against kiosk.data_dir (``None`` stays ``None``)."""
        return None if path is None else self._resolve(self.data_dir, path)

    @staticmethod
    def _resolve(base: Path, path: Path) -> Path:
        return path if path.is_absolute() else base / path

    @property
    def simulated(self) -> bool:
        """Every device simulated: no real hardware is attached to this kiosk."""
        return all(section.simulated for section in self.devices.all())

    def version(self) -> str:
        """A short content hash: which configuration produced a transaction."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def masked(self) -> dict[str, Any]:
        return _mask(self.model_dump(mode="json"))


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, key) for v in value]
    if (
        any(part in key.lower() for part in SECRET_KEYS)
        and value not in (None, "")
        and not key.endswith(("_file", "_dir"))
    ):
        return "***"
    return value
