"""Camera backends that need hardware fail clearly without it; the factory checks its section."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera.factory import build
from drivers.camera.file_source import FileSource
from drivers.camera.opencv_backend import OpenCVSource
from drivers.camera.options import FileCameraSection, Picamera2CameraSection, V4l2CameraSection
from drivers.camera.picamera2_backend import Picamera2Source
from drivers.interfaces import DeviceError, HealthState


@pytest.fixture
def no_picamera2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 now raises ImportError


@pytest.mark.usefixtures("no_picamera2")
def test_picamera2_backend_without_picamera2_is_a_clear_device_error() -> None:
    source = Picamera2Source()
    with pytest.raises(DeviceError) as raised:
        source.open()
    reason = raised.value.reason
    assert "picamera2 is not installed" in reason
    assert "apt install python3-picamera2" in reason and "--system-site-packages" in reason
    source.close()  # closing an unopened camera is harmless


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("no_picamera2")
def test_a_picamera2_camera_without_picamera2_reports_why_in_its_health() -> None:
    camera = build(Picamera2CameraSection(options={"width": 320, "height": 240}))
    try:
        deadline = time.monotonic() + 5
        while "not installed" not in camera.health().reason:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # The first failed open degrades it; the next attempt is at least 0.5 s (backoff) away.
        assert camera.health().state is HealthState.DEGRADED
        assert camera.capture(0.05) is None
    finally:
        camera.stop()


def test_a_missing_v4l2_device_is_a_device_error() -> None:
    source = OpenCVSource("/dev/video-absent-for-test")
    with pytest.raises(DeviceError, match="cannot open"):
        source.open()
    with pytest.raises(DeviceError, match="not open"):
        source.read(0.1)
    source.close()


def test_fourcc_must_be_four_characters() -> None:
    with pytest.raises(ValueError):
        OpenCVSource(0, fourcc="MJPEG")


@pytest.mark.timeout(30)
def test_build_picks_the_backend_and_passes_the_options(tmp_path: Path) -> None:
    assert cv2.imwrite(str(tmp_path / "still.png"), np.zeros((8, 8, 3), np.uint8))
    simulated = build(FileCameraSection(options={"source": "still.png", "fps": 20}), base_dir=tmp_path)
    try:
        assert isinstance(simulated.source, FileSource) and simulated.source.fps == 20
        assert simulated.capture(2.0) is not None
    finally:
        simulated.stop()
    v4l2 = build(
        V4l2CameraSection(port="2", options={"width": 1280, "height": 720, "fps": 15, "fourcc": "MJPG"})
    )
    v4l2.stop()
    assert isinstance(v4l2.source, OpenCVSource)
    assert (v4l2.source.device, v4l2.source.width, v4l2.source.height, v4l2.source.fourcc) == (
        2,
        1280,
        720,
        "MJPG",
    )
    by_path = build(V4l2CameraSection(port="/dev/v4l/by-id/usb-cam-video-index0"))
    by_path.stop()
    assert isinstance(by_path.source, OpenCVSource) and by_path.source.device.endswith("index0")
    pi = build(Picamera2CameraSection(options={"camera_index": 1, "stall_timeout_ms": 3000}))
    pi.stop()
    assert isinstance(pi.source, Picamera2Source) and pi.source.camera_index == 1
    assert pi.stall_timeout_s == 3.0


def test_build_refuses_a_file_camera_without_its_file() -> None:
    # Everything else about a section is refused when the configuration loads (tests/test_config.py).
    with pytest.raises(ValueError, match=r"options\.source: no such file"):
        build(FileCameraSection(options={"source": "/nonexistent/x.png"}))
