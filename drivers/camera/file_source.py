"""A simulated camera that plays files: a still image, a folder of frames or a video, looping.

Used by the demo, by the whole-gate simulation (a simulated traveller steps in front of the
camera by :meth:`FileSource.show`-ing their photos) and by the face-pipeline tests. Images are
decoded with OpenCV and converted to RGB like every real backend's frames; playback is paced at
the configured rate so the watchdog, the preview and the engine see camera-like timing.

Paths never appear in health reasons or logs: in the simulation they name people.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from drivers.camera.options import MAX_FPS
from drivers.camera.pixels import ChannelOrder, PixelFormatError, to_rgb
from drivers.camera.source import SourceFrame
from drivers.interfaces import DeviceError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".pnm", ".tif", ".tiff", ".webp"}
)
VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg"})
DEFAULT_FPS = 15.0


class _Playback(Protocol):
    kind: str
    fps: float | None  # the file's own frame rate, if it has one

    def next_image(self) -> np.ndarray: ...

    def close(self) -> None: ...


class FileSource:
    """A :class:`~drivers.camera.source.FrameSource` playing ``path`` at ``fps`` frames per second.

    ``fps`` ``None`` plays a video at its own rate and images at 15 frames per second. The control
    methods (:meth:`show`, :meth:`stall`, :meth:`resume`) may be called from any thread.
    """

    def __init__(self, path: Path, *, fps: float | None = None) -> None:
        if fps is not None and not 0 < fps <= MAX_FPS:
            raise ValueError(f"fps must be in (0, {MAX_FPS:g}]")
        self.fps = fps
        self.description = "simulated camera (files)"
        self._lock = threading.Lock()
        self._path = Path(path)
        self._meta: Mapping[str, Any] = {}
        self._switch_pending = False
        self._resumed = threading.Event()
        self._resumed.set()
        self._playback: _Playback | None = None
        self._period = 1 / DEFAULT_FPS
        self._due = 0.0
        # Frames of a folder that could not be decoded and were played past.
        self.skipped_frames = 0

    # --- control API ---------------------------------------------------------------------------

    def show(self, path: Path, meta: Mapping[str, Any] | None = None) -> None:
        """Play ``path`` from the next frame on; its frames carry ``meta`` (a simulated traveller puts
        who stands in front of the camera there)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError("the source to show does not exist")
        with self._lock:
            self._path = path
            self._meta = dict(meta or {})
            self._switch_pending = True

    def stall(self) -> None:
        """Stop delivering frames, as a hung camera does, until :meth:`resume` (survives reopening)."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    # --- FrameSource ---------------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            path = self._path
            self._switch_pending = False
        self._start(path)

    def read(self, timeout_s: float) -> SourceFrame | None:
        if not self._resumed.wait(timeout_s):
            return None
        with self._lock:
            switch, path, meta = self._switch_pending, self._path, self._meta
            self._switch_pending = False
        if switch:
            self._start(path)
        playback = self._playback
        if playback is None:
            raise DeviceError(self.description, "not open")
        wait = self._due - time.monotonic()
        if wait > timeout_s:
            time.sleep(max(0.0, timeout_s))
            return None
        if wait > 0:
            time.sleep(wait)
        image = playback.next_image()
        now = time.monotonic()
        # Keep a steady cadence, but after a pause start afresh instead of bursting to catch up.
        self._due = self._due + self._period if now - self._due < self._period else now + self._period
        return SourceFrame(image=image, meta=meta)

    def close(self) -> None:
        if self._playback is not None:
            self._playback.close()
            self._playback = None

    # --- internals ---------------------------------------------------------------------------------

    def _start(self, path: Path) -> None:
        self.close()
        playback = _open_playback(path, self.description, self._note_skip)
        self._period = 1 / (self.fps or playback.fps or DEFAULT_FPS)
        self._due = time.monotonic()
        self._playback = playback
        self.description = f"simulated camera ({playback.kind})"

    def _note_skip(self) -> None:
        self.skipped_frames += 1


def _open_playback(path: Path, description: str, on_skip: Callable[[], None]) -> _Playback:
    if path.is_dir():
        return _FolderPlayback(path, description, on_skip)
    if not path.is_file():
        raise DeviceError(description, "source not found")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _VideoPlayback(path, description)
    return _StillPlayback(_decode(path, description))


def _decode(path: Path, description: str) -> np.ndarray:
    """The image at ``path`` as read-only RGB; DeviceError when it cannot be read or decoded."""
    # Read here and decode from memory: cv2.imread logs the full path of a file it cannot read.
    try:
        data = np.frombuffer(path.read_bytes(), np.uint8)
    except OSError as exc:
        raise DeviceError(description, f"cannot read an image: {exc.strerror}") from None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise DeviceError(description, f"cannot decode a {path.suffix or 'suffix-less'} image")
    try:
        image = to_rgb(bgr, ChannelOrder.BGR)
    except PixelFormatError as exc:
        raise DeviceError(description, str(exc)) from None
    # Frames are shared by every consumer of the camera: none may paint on another's picture.
    image.flags.writeable = False
    return image


def _natural_key(path: Path) -> list[Any]:
    """frame2 before frame10: numbered frames play in the order they were numbered."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", path.name)]


class _StillPlayback:
    kind = "still image"
    fps = None

    def __init__(self, image: np.ndarray) -> None:
        self._image = image

    def next_image(self) -> np.ndarray:
        return self._image

    def close(self) -> None:
        pass


class _FolderPlayback:
    """The folder's images in natural order, looping; the folder is listed again on every loop."""

    kind = "folder"
    fps = None

    def __init__(self, folder: Path, description: str, on_skip: Callable[[], None]) -> None:
        self._folder = folder
        self._description = description
        self._on_skip = on_skip
        self._files = self._list()
        self._index = 0

    def next_image(self) -> np.ndarray:
        tried = 0
        while True:
            if self._index >= len(self._files):
                self._files = self._list()
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            try:
                return _decode(path, self._description)
            except DeviceError:
                # A half-written or removed frame is skipped; a folder of nothing but those is broken.
                self._on_skip()
                tried += 1
                if tried >= len(self._files):
                    raise DeviceError(self._description, "no frame in the folder can be decoded") from None

    def close(self) -> None:
        pass

    def _list(self) -> list[Path]:
        try:
            files = [p for p in self._folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        except OSError as exc:
            raise DeviceError(self._description, f"cannot list the frame folder: {exc.strerror}") from None
        if not files:
            raise DeviceError(self._description, "the frame folder holds no images")
        return sorted(files, key=_natural_key)


class _VideoPlayback:
    kind = "video"

    def __init__(self, path: Path, description: str) -> None:
        self._path = path
        self._description = description
        self._capture = self._open()
        rate = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = rate if 0 < rate <= MAX_FPS else None

    def next_image(self) -> np.ndarray:
        ok, bgr = self._capture.read()
        if not ok:
            # End of the file: start again from a fresh decoder (seeking is unreliable in some codecs).
            self._capture.release()
            self._capture = self._open()
            ok, bgr = self._capture.read()
            if not ok:
                raise DeviceError(self._description, "the video has no decodable frame")
        try:
            image = to_rgb(bgr, ChannelOrder.BGR)
        except PixelFormatError as exc:
            raise DeviceError(self._description, str(exc)) from None
        image.flags.writeable = False
        return image

    def close(self) -> None:
        self._capture.release()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self._path))
        if not capture.isOpened():
            capture.release()
            raise DeviceError(self._description, "cannot open the video")
        return capture
