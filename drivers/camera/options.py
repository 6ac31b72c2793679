"""The ``[devices.camera]`` sections: the in-process lane camera, a file player, USB and Pi cameras.

Validated when the configuration loads; :func:`drivers.camera.factory.build` turns a section into a
started camera. No OpenCV here: loading a configuration must not load the camera stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.registry import BackendSection, register

MAX_FPS = 240.0


class WatchdogOptions(BaseModel):
    """What every real camera shares: the frame watchdog that restarts a stalled camera."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stall_timeout_ms: int = Field(2000, ge=100, le=60_000)
    startup_timeout_ms: int = Field(5000, ge=100, le=120_000)
    max_restarts: int = Field(3, ge=1, le=100)
    restart_window_s: float = Field(60.0, gt=0, le=3600)


class FileOptions(WatchdogOptions):
    # A still image, a folder of frames or a video file; relative to the configuration file.
    source: Path
    fps: float | None = Field(None, gt=0, le=MAX_FPS)


class FrameSizeOptions(WatchdogOptions):
    width: int = Field(640, ge=16, le=8192)
    height: int = Field(480, ge=16, le=8192)


class V4l2Options(FrameSizeOptions):
    fps: float = Field(30.0, gt=0, le=MAX_FPS)
    fourcc: str | None = Field(None, pattern=r"^[ -~]{4}$")


class Picamera2Options(FrameSizeOptions):
    camera_index: int = Field(0, ge=0, le=15)
    fps: float | None = Field(None, gt=0, le=MAX_FPS)


@register("camera")
class SimulatedCameraSection(BackendSection):
    """The in-process lane camera, whose frames name the simulated traveller."""

    backend: Literal["simulated"] = "simulated"
    simulated = True


@register("camera")
class FileCameraSection(BackendSection):
    """Plays an image, a folder of frames or a video through the real frame watchdog."""

    backend: Literal["file"] = "file"
    options: FileOptions
    simulated = True


@register("camera")
class V4l2CameraSection(BackendSection):
    """A USB (UVC) camera through OpenCV's V4L2 capture."""

    backend: Literal["v4l2"] = "v4l2"
    # /dev/v4l/by-id/...-video-index0 (stable across reboots), /dev/video0, or an index such as "0".
    port: str | None = None
    options: V4l2Options = V4l2Options()


@register("camera")
class Picamera2CameraSection(BackendSection):
    """A Raspberry Pi (CSI) camera through picamera2; it has no port."""

    backend: Literal["picamera2"] = "picamera2"
    options: Picamera2Options = Picamera2Options()
