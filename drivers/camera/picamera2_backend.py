"""Raspberry Pi cameras (CSI) through picamera2.

Set-up on Raspberry Pi OS (Bookworm or later): picamera2 must match the system's libcamera, so it
comes from the Raspberry Pi archive, not from PyPI::

    sudo apt install -y python3-picamera2 --no-install-recommends
    python3 -m venv --system-site-packages /opt/gerbang/venv   # sees the apt-installed picamera2
    /opt/gerbang/venv/bin/pip install 'gerbang[pi]'   # picamera2 is already met by the apt package

Check the camera with ``rpicam-hello --list-cameras`` (``libcamera-hello`` on older images).

picamera2 is imported when the camera opens, never at import time: the rest of the kiosk (and CI,
where it is not installed) must work without it. A missing picamera2 is a DeviceError naming the
fix, which the watchdog turns into a FAILED camera rather than a crash.

Format facts: the main stream is configured as "RGB888", which picamera2 (following the DRM
fourcc names) lays out as B, G, R bytes in the numpy array, hence the BGR conversion below. Frames
are fetched as asynchronous jobs waited for with a timeout, so a camera that stops delivering
("frontend has timed out") cannot block the reader; the watchdog then restarts it.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

from drivers.camera.pixels import ChannelOrder, PixelFormatError, to_rgb
from drivers.camera.source import SourceFrame
from drivers.interfaces import DeviceError

MISSING = (
    "picamera2 is not installed: on Raspberry Pi OS run 'sudo apt install python3-picamera2' and use a "
    "virtualenv created with --system-site-packages"
)


def _picamera2_module() -> Any:
    try:
        return importlib.import_module("picamera2")
    except ImportError:
        raise DeviceError("picamera2", MISSING) from None


class Picamera2Source:
    """A :class:`~drivers.camera.source.FrameSource` for a Pi camera; ``fps=None`` leaves it to libcamera."""

    def __init__(
        self, camera_index: int = 0, *, width: int = 640, height: int = 480, fps: float | None = None
    ) -> None:
        self.camera_index = camera_index
        self.width = width
        self.height = height
        self.fps = fps
        self.description = f"picamera2 camera {camera_index}"
        self._camera: Any = None
        self._job: Any = None  # a frame asked for but not yet delivered; asked for once, not per read

    def open(self) -> None:
        module = _picamera2_module()
        try:
            camera = module.Picamera2(self.camera_index)
        except Exception as exc:  # picamera2 raises IndexError, RuntimeError... for absent or busy cameras
            raise DeviceError(self.description, f"cannot open: {type(exc).__name__}: {exc}") from None
        controls: dict[str, Any] = {}
        if self.fps is not None:
            frame_us = round(1_000_000 / self.fps)
            controls["FrameDurationLimits"] = (frame_us, frame_us)
        try:
            config = camera.create_preview_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"}, controls=controls
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                camera.close()
            raise DeviceError(self.description, f"cannot start: {type(exc).__name__}: {exc}") from None
        self._camera = camera
        self._job = None

    def read(self, timeout_s: float) -> SourceFrame | None:
        camera = self._camera
        if camera is None:
            raise DeviceError(self.description, "not open")
        if self._job is None:
            self._job = camera.capture_array("main", wait=False)
        try:
            array = camera.wait(self._job, timeout=timeout_s)
        except TimeoutError:
            return None
        self._job = None
        try:
            return SourceFrame(image=to_rgb(array, ChannelOrder.BGR))
        except PixelFormatError as exc:
            raise DeviceError(self.description, str(exc)) from None

    def close(self) -> None:
        camera, self._camera, self._job = self._camera, None, None
        if camera is not None:
            with contextlib.suppress(Exception):
                camera.stop()
            with contextlib.suppress(Exception):
                camera.close()
