"""USB (UVC) cameras through OpenCV's V4L2 backend.

The device is a V4L2 node (``/dev/video0``, or better a stable ``/dev/v4l/by-id/...`` link) or an
index. OpenCV delivers BGR; frames leave here as RGB.

OpenCV waits up to 10 s in select() for each frame of a camera that stopped sending, and ignores
``CAP_PROP_READ_TIMEOUT_MSEC`` for V4L2; its ``OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT`` environment
setting (whole seconds, read once at the first frame grab) is the only bound. It is set here,
unless the environment already sets it, so the watchdog's reader comes back soon after a stall.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import cv2

from drivers.camera.pixels import ChannelOrder, PixelFormatError, to_rgb
from drivers.camera.source import SourceFrame
from drivers.interfaces import DeviceError

log = logging.getLogger(__name__)

V4L2_SELECT_TIMEOUT_S = 2
# One failed grab can be a hiccup; several in a row mean the device is gone or wedged.
FAILED_GRABS_BEFORE_ERROR = 3


class OpenCVSource:
    """A :class:`~drivers.camera.source.FrameSource` for a V4L2 camera (any OpenCV camera off Linux)."""

    def __init__(
        self,
        device: int | str = 0,
        *,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        fourcc: str | None = None,
    ) -> None:
        if fourcc is not None and len(fourcc) != 4:
            raise ValueError("fourcc must be four characters, e.g. MJPG or YUYV")
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self.fourcc = fourcc
        self.description = f"v4l2 {device}"
        self._capture: cv2.VideoCapture | None = None
        self._failed_grabs = 0

    def open(self) -> None:
        os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", str(V4L2_SELECT_TIMEOUT_S))
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        capture = cv2.VideoCapture(self.device, api)
        if not capture.isOpened():
            capture.release()
            raise DeviceError(self.description, "cannot open the camera (absent, busy or no permission)")
        # The pixel format goes first: V4L2 only offers some sizes and rates in some formats.
        if self.fourcc is not None:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        # A one-frame queue: the engine wants what the camera sees now, not what it saw earlier.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        got = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            capture.get(cv2.CAP_PROP_FPS),
        )
        if got[:2] != (self.width, self.height):
            log.warning(
                "%s: asked for %dx%d, the camera gives %dx%d",
                self.description,
                self.width,
                self.height,
                *got[:2],
            )
        log.info("%s: open at %dx%d, %.1f fps", self.description, *got)
        self._capture = capture
        self._failed_grabs = 0

    def read(self, timeout_s: float) -> SourceFrame | None:
        if self._capture is None:
            raise DeviceError(self.description, "not open")
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            self._failed_grabs += 1
            if self._failed_grabs >= FAILED_GRABS_BEFORE_ERROR:
                raise DeviceError(self.description, f"{self._failed_grabs} frame grabs in a row failed")
            time.sleep(min(timeout_s, 0.05))  # a failing device fails fast: do not spin on it
            return None
        self._failed_grabs = 0
        try:
            return SourceFrame(image=to_rgb(bgr, ChannelOrder.BGR))
        except PixelFormatError as exc:
            raise DeviceError(self.description, str(exc)) from None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
