"""Turn a ``[devices.camera]`` section (validated when the configuration loaded) into a running camera."""

from __future__ import annotations

from pathlib import Path

from drivers.camera.file_source import FileSource
from drivers.camera.opencv_backend import OpenCVSource
from drivers.camera.options import (
    FileCameraSection,
    Picamera2CameraSection,
    V4l2CameraSection,
    WatchdogOptions,
)
from drivers.camera.picamera2_backend import Picamera2Source
from drivers.camera.source import FrameSource
from drivers.camera.watchdog import WatchdogCamera

CameraSection = FileCameraSection | V4l2CameraSection | Picamera2CameraSection


def build(section: CameraSection, *, base_dir: Path | None = None) -> WatchdogCamera:
    """A started camera for ``section``.

    ``backend``:
      - ``"picamera2"``: a Raspberry Pi (CSI) camera.
      - ``"v4l2"``: a USB (UVC) camera through OpenCV; ``port`` is the V4L2 device, a path such as
        ``/dev/v4l/by-id/...-video-index0`` (stable across reboots) or ``/dev/video0``, or an index
        such as ``"0"``; unset means index 0.
      - ``"file"``: plays ``options.source``. (The in-process lane camera, ``"simulated"``, is
        built with the simulated lane: ``drivers.simulated.lane.SimulatedCamera``.)

    ``options`` (all optional unless said):
      - ``source`` (file, required): a still image, a folder of frames (played in natural order,
        looping) or a video file (looping); relative to ``base_dir`` when given.
      - ``fps``: frames per second. file: default the video's own rate, else 15; v4l2: default 30;
        picamera2: default libcamera's choice.
      - ``width``, ``height`` (v4l2, picamera2): frame size, default 640×480.
      - ``fourcc`` (v4l2): pixel format to ask for, e.g. ``"MJPG"`` (many USB cameras reach
        their full rate only in MJPG); default the driver's.
      - ``camera_index`` (picamera2): which Pi camera, default 0.
      - ``stall_timeout_ms``: no frame for this long restarts the camera; default 2000.
      - ``startup_timeout_ms``: how long a freshly opened camera may take to its first frame;
        default 5000.
      - ``max_restarts`` within ``restart_window_s``: that many restarts mark the camera FAILED;
        defaults 3 within 60 s.

    Raises ValueError naming the key when the file source does not exist.
    """
    options: WatchdogOptions = section.options
    source: FrameSource
    match section:
        case FileCameraSection(options=played):
            path = played.source if base_dir is None else base_dir / played.source
            if not path.exists():
                raise ValueError("options.source: no such file or folder")
            source = FileSource(path, fps=played.fps)
        case V4l2CameraSection(port=port, options=v4l2):
            source = OpenCVSource(
                _v4l2_device(port), width=v4l2.width, height=v4l2.height, fps=v4l2.fps, fourcc=v4l2.fourcc
            )
        case Picamera2CameraSection(options=pi):
            source = Picamera2Source(pi.camera_index, width=pi.width, height=pi.height, fps=pi.fps)
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


def _v4l2_device(port: str | None) -> int | str:
    if port is None:
        return 0
    return int(port) if port.isdigit() else port
