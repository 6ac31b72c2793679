"""Turn the ``[devices.camera]`` section of the configuration into a running camera."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.camera.file_source import MAX_FPS, FileSource
from drivers.camera.opencv_backend import OpenCVSource
from drivers.camera.picamera2_backend import Picamera2Source
from drivers.camera.source import FrameSource
from drivers.camera.watchdog import WatchdogCamera
from kiosk.config import ConfigError, DeviceSection

SECTION = "devices.camera"


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stall_timeout_ms: int = Field(2000, ge=100, le=60_000)
    startup_timeout_ms: int = Field(5000, ge=100, le=120_000)
    max_restarts: int = Field(3, ge=1, le=100)
    restart_window_s: float = Field(60.0, gt=0, le=3600)


_T = TypeVar("_T", bound=_Options)


class _SimulatedOptions(_Options):
    source: Path
    fps: float | None = Field(None, gt=0, le=MAX_FPS)


class _CameraOptions(_Options):
    width: int = Field(640, ge=16, le=8192)
    height: int = Field(480, ge=16, le=8192)


class _V4l2Options(_CameraOptions):
    fps: float = Field(30.0, gt=0, le=MAX_FPS)
    fourcc: str | None = Field(None, pattern=r"^[ -~]{4}$")


class _Picamera2Options(_CameraOptions):
    camera_index: int = Field(0, ge=0, le=15)
    fps: float | None = Field(None, gt=0, le=MAX_FPS)


def build(section: DeviceSection, *, base_dir: Path | None = None) -> WatchdogCamera:
    """A started camera for ``section``; raises ConfigError naming the key when the section is wrong.

    ``backend``:
      - ``"picamera2"``: a Raspberry Pi (CSI) camera; ``port`` must be unset.
      - ``"v4l2"``: a USB (UVC) camera through OpenCV; ``port`` is the V4L2 device, a path such as
        ``/dev/v4l/by-id/...-video-index0`` (stable across reboots) or ``/dev/video0``, or an index
        such as ``"0"``; unset means index 0.
      - ``"simulated"``: plays files; needs ``options.source``. Without a source there is no file
        camera to build and this raises ConfigError: the composition root then keeps the in-process
        lane camera (``drivers.simulated.lane.SimulatedCamera``).

    ``options`` (all optional unless said):
      - ``source`` (simulated, required): a still image, a folder of frames (played in natural
        order, looping) or a video file (looping); relative to ``base_dir`` when given.
      - ``fps``: frames per second. simulated: default the video's own rate, else 15; v4l2:
        default 30; picamera2: default libcamera's choice.
      - ``width``, ``height`` (v4l2, picamera2): frame size, default 640×480.
      - ``fourcc`` (v4l2): pixel format to ask for, e.g. ``"MJPG"`` (many USB cameras reach
        their full rate only in MJPG); default the driver's.
      - ``camera_index`` (picamera2): which Pi camera, default 0.
      - ``stall_timeout_ms``: no frame for this long restarts the camera; default 2000.
      - ``startup_timeout_ms``: how long a freshly opened camera may take to its first frame;
        default 5000.
      - ``max_restarts`` within ``restart_window_s``: that many restarts mark the camera FAILED;
        defaults 3 within 60 s.
    """
    if section.baudrate is not None:
        raise ConfigError(f"key '{SECTION}.baudrate': cameras have no baud rate")
    backend = section.backend
    source: FrameSource
    if backend == "simulated":
        if "source" not in section.options:
            raise ConfigError(
                f"key '{SECTION}.options.source': the simulated file camera needs a source (an image, a "
                "folder of frames or a video); without one the in-process lane camera is used"
            )
        _no_port(section)
        simulated = _parse(_SimulatedOptions, section.options)
        path = simulated.source if base_dir is None else base_dir / simulated.source
        if not path.exists():
            raise ConfigError(f"key '{SECTION}.options.source': no such file or folder")
        options: _Options = simulated
        source = FileSource(path, fps=simulated.fps)
    elif backend == "v4l2":
        v4l2 = _parse(_V4l2Options, section.options)
        options = v4l2
        source = OpenCVSource(
            _v4l2_device(section.port), width=v4l2.width, height=v4l2.height, fps=v4l2.fps, fourcc=v4l2.fourcc
        )
    elif backend == "picamera2":
        _no_port(section)
        picamera2 = _parse(_Picamera2Options, section.options)
        options = picamera2
        source = Picamera2Source(
            picamera2.camera_index, width=picamera2.width, height=picamera2.height, fps=picamera2.fps
        )
    else:
        raise ConfigError(
            f"key '{SECTION}.backend': '{backend}' is not a camera; use picamera2, v4l2 or simulated"
        )
    camera = WatchdogCamera(
        source,
        name="camera",
        stall_timeout_s=options.stall_timeout_ms / 1000,
        startup_timeout_s=options.startup_timeout_ms / 1000,
        max_restarts=options.max_restarts,
        restart_window_s=options.restart_window_s,
    )
    camera.start()
    return camera


def _parse(model: type[_T], options: dict[str, Any]) -> _T:
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"key '{SECTION}.options.{'.'.join(str(p) for p in err['loc'])}': {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(problems) from None


def _no_port(section: DeviceSection) -> None:
    if section.port is not None:
        raise ConfigError(f"key '{SECTION}.port': the {section.backend} camera takes no port")


def _v4l2_device(port: str | None) -> int | str:
    if port is None:
        return 0
    return int(port) if port.isdigit() else port
