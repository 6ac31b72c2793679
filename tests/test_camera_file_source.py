"""The simulated file camera: folders and videos play in order and loop, colours come out RGB, and
the camera behind the watchdog survives its files disappearing and coming back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.backoff import Backoff
from drivers.camera.factory import build
from drivers.camera.file_source import MAX_FPS, FileSource
from drivers.camera.options import FileCameraSection
from drivers.camera.simulator import main as simulator_main
from drivers.camera.simulator import measure_preview
from drivers.camera.watchdog import WatchdogCamera
from drivers.interfaces import DeviceError, HealthState
from tests.test_camera_watchdog import wait_until

SIZE = (48, 64)  # (H, W): small keeps the tests fast; the benchmark uses 640x480
# Distinct, far-apart levels per frame so lossy JPEG/MJPEG still tells the frames apart.
LEVELS = (10, 60, 110, 160, 210)
JPEG_TOLERANCE = 12


def rgb_frame(red: int, green: int = 0, blue: int = 0) -> np.ndarray:
    image = np.zeros((*SIZE, 3), np.uint8)
    image[:, :] = (red, green, blue)
    return image


def write_rgb(path: Path, image: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def frames_folder(folder: Path, suffix: str) -> Path:
    folder.mkdir()
    for index, level in enumerate(LEVELS):
        write_rgb(folder / f"frame{index}{suffix}", rgb_frame(level, 255 - level, 7))
    return folder


def play(source: FileSource, count: int) -> list[np.ndarray]:
    source.open()
    try:
        frames = []
        while len(frames) < count:
            got = source.read(1.0)
            if got is not None:
                frames.append(got.image)
        return frames
    finally:
        source.close()


def red_levels(frames: list[np.ndarray]) -> list[int]:
    return [int(frame[..., 0].mean().round()) for frame in frames]


def assert_levels(got: list[int], expected: list[int], tolerance: int = 0) -> None:
    assert len(got) == len(expected)
    assert all(abs(g - e) <= tolerance for g, e in zip(got, expected, strict=True)), (got, expected)


@pytest.mark.timeout(30)
def test_a_pure_red_image_comes_out_red_in_rgb_order(tmp_path: Path) -> None:
    write_rgb(tmp_path / "red.png", rgb_frame(255))
    (frame,) = play(FileSource(tmp_path / "red.png", fps=200), 1)
    assert frame.shape == (*SIZE, 3) and frame.dtype == np.uint8
    assert frame[0, 0].tolist() == [255, 0, 0]
    assert (frame == [255, 0, 0]).all()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("suffix", "tolerance"), [(".png", 0), (".jpg", JPEG_TOLERANCE)])
def test_a_folder_plays_in_order_and_loops(tmp_path: Path, suffix: str, tolerance: int) -> None:
    folder = frames_folder(tmp_path / "frames", suffix)
    frames = play(FileSource(folder, fps=200), 12)
    assert_levels(red_levels(frames), [LEVELS[i % 5] for i in range(12)], tolerance)
    green = [int(f[..., 1].mean().round()) for f in frames[:5]]
    assert_levels(green, [255 - level for level in LEVELS], tolerance)


@pytest.mark.timeout(30)
def test_numbered_frames_play_in_number_order_and_other_files_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, level in ((10, 160), (2, 60), (1, 10)):
        write_rgb(folder / f"f{number}.png", rgb_frame(level))
    (folder / "notes.txt").write_text("not a frame")
    (folder / "f3.png").write_bytes(b"\x89PNG truncated")  # a half-written frame
    frames = play(FileSource(folder, fps=200), 6)
    assert red_levels(frames) == [10, 60, 160, 10, 60, 160]


@pytest.mark.timeout(30)
def test_a_video_plays_in_order_and_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (SIZE[1], SIZE[0]))
    assert writer.isOpened()
    for level in LEVELS:
        writer.write(cv2.cvtColor(rgb_frame(level, 0, 255 - level), cv2.COLOR_RGB2BGR))
    writer.release()
    source = FileSource(path, fps=200)
    frames = play(source, 13)
    assert_levels(red_levels(frames), [LEVELS[i % 5] for i in range(13)], JPEG_TOLERANCE)
    blue = [int(f[..., 2].mean().round()) for f in frames[:5]]
    assert_levels(blue, [255 - level for level in LEVELS], JPEG_TOLERANCE)
    assert source.description == "simulated camera (video)"


@pytest.mark.timeout(30)
def test_a_video_plays_at_its_own_rate_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (SIZE[1], SIZE[0]))
    for level in LEVELS:
        writer.write(rgb_frame(level))
    writer.release()
    source = FileSource(path)
    started = time.monotonic()
    play(source, 11)
    elapsed = time.monotonic() - started
    assert elapsed > 0.15  # 10 intervals at 50 fps = 0.2 s: paced, not as fast as decoding


@pytest.mark.timeout(30)
def test_unusable_sources_are_device_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.png").write_bytes(b"garbage")
    (tmp_path / "broken.avi").write_bytes(b"garbage")
    for path in (tmp_path / "missing", tmp_path / "empty", tmp_path / "broken.png", tmp_path / "broken.avi"):
        source = FileSource(path)
        with pytest.raises(DeviceError) as raised:
            source.open()
            source.read(0.5)
        assert str(tmp_path) not in str(raised.value)  # paths name people in the simulation
        source.close()


@pytest.fixture
def fast_camera() -> Iterator[Callable[[FileSource], WatchdogCamera]]:
    made: list[WatchdogCamera] = []

    def make(source: FileSource) -> WatchdogCamera:
        cam = WatchdogCamera(
            source, stall_timeout_s=0.3, startup_timeout_s=0.5, max_restarts=3, backoff=Backoff(0.02, 0.05)
        )
        cam.start()
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.stop()


@pytest.mark.timeout(30)
def test_show_switches_what_the_camera_sees_and_tags_the_frames(
    tmp_path: Path, fast_camera: Callable[[FileSource], WatchdogCamera]
) -> None:
    write_rgb(tmp_path / "empty_lane.png", rgb_frame(0, 0, 255))
    traveller = frames_folder(tmp_path / "traveller", ".png")
    source = FileSource(tmp_path / "empty_lane.png", fps=60)
    cam = fast_camera(source)
    frame = cam.capture(2.0)
    assert frame is not None and frame.image[0, 0].tolist() == [0, 0, 255] and dict(frame.meta) == {}
    source.show(traveller, meta={"subject": 7})
    wait_until(lambda: (f := cam.capture(1.0)) is not None and f.meta.get("subject") == 7)
    frame = cam.capture(1.0)
    assert frame is not None and int(frame.image[0, 0, 0]) in LEVELS
    with pytest.raises(FileNotFoundError):
        source.show(tmp_path / "nobody")


@pytest.mark.timeout(30)
def test_frames_cannot_be_painted_on_by_one_consumer_for_all(
    tmp_path: Path, fast_camera: Callable[[FileSource], WatchdogCamera]
) -> None:
    write_rgb(tmp_path / "still.png", rgb_frame(255))
    frame = fast_camera(FileSource(tmp_path / "still.png", fps=60)).capture(2.0)
    assert frame is not None
    with pytest.raises(ValueError):
        frame.image[0, 0] = 0


@pytest.mark.timeout(30)
def test_frames_vanishing_fail_the_camera_and_it_recovers_when_they_return(
    tmp_path: Path, fast_camera: Callable[[FileSource], WatchdogCamera]
) -> None:
    folder = frames_folder(tmp_path / "frames", ".png")
    cam = fast_camera(FileSource(folder, fps=100))
    assert cam.capture(2.0) is not None
    unplugged = folder.rename(tmp_path / "elsewhere")  # the camera's "device" disappears
    wait_until(lambda: cam.health().state is HealthState.FAILED)
    with pytest.raises(DeviceError):
        cam.capture(0.5)
    unplugged.rename(folder)
    wait_until(lambda: cam.health().state is HealthState.OK)
    assert cam.capture(2.0) is not None


@pytest.mark.timeout(30)
def test_a_stalled_simulated_camera_fails_and_resumes(
    tmp_path: Path, fast_camera: Callable[[FileSource], WatchdogCamera]
) -> None:
    write_rgb(tmp_path / "still.png", rgb_frame(255))
    source = FileSource(tmp_path / "still.png", fps=60)
    cam = fast_camera(source)
    assert cam.capture(2.0) is not None
    source.stall()
    wait_until(lambda: cam.health().state is HealthState.FAILED)
    assert "restarts" in cam.health().reason
    source.resume()
    wait_until(lambda: cam.health().state is HealthState.OK)
    assert cam.capture(2.0) is not None


@pytest.mark.timeout(30)
def test_preview_rate_of_the_simulated_camera(tmp_path: Path) -> None:
    folder = frames_folder(tmp_path / "frames", ".png")
    big = tmp_path / "vga"
    big.mkdir()
    for index in range(10):
        write_rgb(
            big / f"{index}.png", np.random.default_rng(index).integers(0, 256, (480, 640, 3), np.uint8)
        )
    results = {}
    for label, options in (
        ("640x480 png, default fps", {"source": str(big)}),
        ("640x480 png, fps=60", {"source": str(big), "fps": 60}),
        ("64x48 png, fps=60", {"source": str(folder), "fps": 60}),
    ):
        cam = build(FileCameraSection(options=options))
        try:
            rate, last = measure_preview(cam, 1.0)
        finally:
            cam.stop()
        assert last is not None
        results[label] = rate.fps
        print(f"preview {label}: {rate.fps:.1f} fps ({rate.frames} frames in {rate.seconds:.2f} s)")
    assert results["640x480 png, default fps"] >= 10  # 15 configured; generous bound against CI jitter
    assert results["640x480 png, fps=60"] >= 30


@pytest.mark.timeout(30)
def test_the_simulator_command_measures_and_snapshots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_rgb(tmp_path / "red.png", rgb_frame(255))
    snapshot = tmp_path / "out.png"
    assert (
        simulator_main(
            ["--source", str(tmp_path / "red.png"), "--seconds", "0.5", "--snapshot", str(snapshot), "--json"]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] >= 3 and report["health"] == "ok"
    assert (report["width"], report["height"]) == (SIZE[1], SIZE[0])
    assert cv2.imread(str(snapshot))[0, 0].tolist() == [0, 0, 255]  # BGR on disk: red stayed red
    assert simulator_main(["--source", str(tmp_path / "missing.png")]) == 2


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    mutated = bytearray(data)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    return bytes(mutated[:cut] if cut is not None else mutated)


@pytest.mark.timeout(60)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    junk=st.lists(
        st.one_of(
            st.binary(max_size=300).map(lambda b: ("random", b)),
            st.tuples(
                st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
                st.one_of(st.none(), st.integers(0, 400)),
            ).map(lambda m: ("mutated", m)),
        ),
        min_size=1,
        max_size=4,
    ),
    suffix=st.sampled_from([".png", ".jpg"]),
)
def test_corrupt_frames_in_a_folder_are_skipped_and_counted(
    tmp_path_factory: pytest.TempPathFactory, junk: list[tuple[str, Any]], suffix: str
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    cycle = [20, 120, 220]
    base = cv2.imencode(suffix, cv2.cvtColor(rgb_frame(70, 70, 70), cv2.COLOR_RGB2BGR))[1].tobytes()
    for index, level in enumerate(cycle):
        write_rgb(folder / f"{index * 2}{suffix}", rgb_frame(level, 255 - level, 7))  # 0, 2, 4
    for index, (kind, payload) in enumerate(junk):  # 1, 3, 5, 7: between the good frames
        (folder / f"{index * 2 + 1}{suffix}").write_bytes(
            payload if kind == "random" else _mutate(base, *payload)
        )
    source = FileSource(folder, fps=MAX_FPS)
    frames = play(source, 12)
    assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in frames)

    def good_level(frame: np.ndarray) -> int | None:
        for level in cycle:
            expected = np.array([level, 255 - level, 7])
            if np.abs(frame.reshape(-1, 3).astype(int) - expected).max() <= JPEG_TOLERANCE:
                return level
        return None

    # The intact frames keep their order; a damaged one decodes to something else or is skipped and
    # counted, and never raises.
    intact = [level for level in map(good_level, frames) if level is not None]
    start = cycle.index(intact[0])
    assert intact == [cycle[(start + i) % 3] for i in range(len(intact))]
    damaged_shown = len(frames) - len(intact)
    assert damaged_shown + source.skipped_frames >= 1
