"""Cameras: the Pi camera (picamera2), USB cameras (OpenCV/V4L2) and a file-playing simulator, each
behind the frame watchdog that restarts a stalled camera and reports its health.

``build`` turns the ``[devices.camera]`` configuration section into a started camera.
"""

from drivers.camera.factory import build
from drivers.camera.file_source import FileSource
from drivers.camera.watchdog import WatchdogCamera

__all__ = ["FileSource", "WatchdogCamera", "build"]
