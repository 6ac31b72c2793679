"""``python -m drivers simulate camera``: play a file camera and report what the kiosk would see.

    python -m drivers simulate camera --source PATH [--fps N] [--seconds S] [--snapshot OUT.png] [--json]

It runs the file camera exactly as the kiosk does (file source behind the frame watchdog),
samples the preview the way the UI does for ``--seconds``, and prints the frame rate, frame size,
health and restarts; ``--snapshot`` writes the last frame so colours and orientation can be
checked by eye. The control API for a simulated traveller is :class:`FileSource`
(``camera.source.show(...)``, ``stall()``, ``resume()``) on a camera from
:func:`drivers.camera.factory.build`, started and stopped with ``start()``/``stop()``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2

from drivers.camera.factory import build
from drivers.camera.options import FileCameraSection
from drivers.camera.watchdog import WatchdogCamera
from drivers.interfaces import DeviceError, Frame

# How often the UI would look for a new preview frame (a 100 Hz display loop is generous).
PREVIEW_POLL_S = 0.01


@dataclass(frozen=True)
class PreviewRate:
    frames: int
    seconds: float
    fps: float
    width: int
    height: int
    health: str
    restarts: int


def measure_preview(camera: WatchdogCamera, seconds: float) -> tuple[PreviewRate, Frame | None]:
    """Distinct preview frames per second over ``seconds``, after the first frame arrived."""
    first = camera.next_frame(0, timeout_s=max(seconds, camera.startup_timeout_s))
    last = first
    frames = 0
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        frame = camera.preview()
        if frame is not None and (last is None or frame.sequence > last.sequence):
            frames += 1
            last = frame
        time.sleep(PREVIEW_POLL_S)
    height, width = last.image.shape[:2] if last is not None else (0, 0)
    # The rate between the first and the last frame seen: the stream's cadence, free of where the
    # measuring window happened to start and end.
    span = last.timestamp - first.timestamp if first is not None and last is not None else 0.0
    rate = PreviewRate(
        frames=frames,
        seconds=round(elapsed, 3),
        fps=round(frames / span, 2) if span > 0 else 0.0,
        width=width,
        height=height,
        health=str(camera.health().state),
        restarts=camera.restarts,
    )
    return rate, last


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drivers simulate camera", description="Play a file camera and measure its preview."
    )
    parser.add_argument("--source", type=Path, required=True, help="image, folder of frames or video file")
    parser.add_argument("--fps", type=float, help="playback rate (default: the video's own, else 15)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to measure (default 3)")
    parser.add_argument("--snapshot", type=Path, help="write the last frame to this image file")
    parser.add_argument("--json", action="store_true", help="print the measurement as JSON")
    args = parser.parse_args(argv)
    try:
        camera = build(FileCameraSection(options={"source": args.source, "fps": args.fps}))
    except ValueError as exc:  # pydantic's ValidationError is one too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        rate, last = measure_preview(camera, args.seconds)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        camera.stop()
    if args.snapshot is not None and last is not None:
        cv2.imwrite(str(args.snapshot), cv2.cvtColor(last.image, cv2.COLOR_RGB2BGR))
    if args.json:
        print(json.dumps(asdict(rate)))
    else:
        print(
            f"{rate.frames} frames in {rate.seconds:.2f} s = {rate.fps:.1f} fps, "
            f"{rate.width}x{rate.height}, health {rate.health}, {rate.restarts} restart(s)"
        )
    return 0 if rate.frames else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
