"""Per-stage latency of our pipeline (fp32 and int8, 1 and 2 threads) next to dlib's."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import align, model_files, runtime
from models.tools import embeddings, lfw
from models.tools.chains import DlibChain, OnnxChain


@dataclass
class StageTimes:
    label: str
    ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.ms.setdefault(stage, []).append(1000 * seconds)

    def median(self, stage: str) -> float:
        values = self.ms.get(stage)
        return statistics.median(values) if values else math.nan

    def mean(self, stage: str) -> float:
        values = self.ms.get(stage)
        return statistics.fmean(values) if values else math.nan


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def pad_into_frame(rgb: np.ndarray, size: tuple[int, int] = (640, 480), at: tuple[int, int] | None = None):
    """A grey size[0] x size[1] frame with ``rgb`` pasted in (centred unless ``at`` = (x, y))."""
    width, height = size
    frame = np.full((height, width, 3), 114, np.uint8)
    h, w = rgb.shape[:2]
    x, y = at if at is not None else ((width - w) // 2, (height - h) // 2)
    frame[y : y + h, x : x + w] = rgb
    return frame


FRAME_LIMITS = {"min_face_px": 120.0, "max_face_px": 400.0}


def time_ours(
    chain32: OnnxChain, chain8: OnnxChain | None, images: Sequence[np.ndarray], label: str
) -> StageTimes:
    """Per-stage times of our chain; the detect stage includes subject selection, no upsample retry."""
    times = StageTimes(label)
    frames = [pad_into_frame(img) for img in images]
    # warm-up: first runs allocate arenas
    chain32.find_face(images[0], retry=False)
    for img, frame in zip(images, frames, strict=True):
        box, s = _timed(lambda img=img: chain32.find_face(img, retry=False))
        times.add("detect", s)
        if box is None:
            continue
        pts, s = _timed(lambda img=img, box=box: chain32.landmarks(img, box))
        times.add("landmarks", s)
        chip, s = _timed(lambda img=img, pts=pts: chain32.align(img, pts))
        times.add("align", s)
        for tag, ch in (("fp32", chain32), ("int8", chain8)):
            if ch is None:
                continue
            _, s = _timed(lambda ch=ch, chip=chip: runtime.embed(ch.resnet, chip))
            times.add(f"embed {tag} (1 chip)", s)
            _, s = _timed(
                lambda ch=ch, chip=chip: runtime.embed(ch.resnet, np.stack([chip, align.flip(chip)]))
            )
            times.add(f"embed {tag} (chip+mirror)", s)
        _, s = _timed(lambda frame=frame: chain32.find_face(frame, retry=False))
        times.add("detect 640x480 full pyramid", s)
        fbox, s = _timed(lambda frame=frame: chain32.find_face(frame, retry=False, **FRAME_LIMITS))
        times.add("detect 640x480 faces>=120px", s)
        if fbox is not None:
            fpts, s = _timed(lambda frame=frame, fbox=fbox: chain32.landmarks(frame, fbox))
            times.add("landmarks 640x480", s)
            _, s = _timed(lambda frame=frame, fpts=fpts: chain32.align(frame, fpts))
            times.add("align 640x480", s)
    return times


def time_dlib(chain: DlibChain, images: Sequence[np.ndarray]) -> StageTimes:
    times = StageTimes("dlib")
    chain(images[0])
    for img in images:
        rect, s = _timed(lambda img=img: chain.find_face(img, retry=False))
        times.add("detect", s)
        if rect is None:
            continue
        shape, s = _timed(lambda img=img, rect=rect: chain.landmarks(img, rect))
        times.add("landmarks", s)
        chip, s = _timed(lambda img=img, shape=shape: chain.align(img, shape))
        times.add("align", s)
        _, s = _timed(lambda chip=chip: chain.embed_chip(chip))
        times.add("embed", s)
        frame = pad_into_frame(img)
        _, s = _timed(lambda frame=frame: chain.find_face(frame, retry=False))
        times.add("detect 640x480", s)
    return times


def run_latency(
    data_dir: Path, *, count: int, threads: Sequence[int], model_dir: Path | None = None, dlib: bool = True
) -> str:
    models = model_dir if model_dir is not None else model_files.default_model_dir()
    full = lfw.load_lfw(data_dir)
    step = max(1, len(full) // count)
    images = [embeddings.read_rgb(p) for p in full.paths[::step][:count]]
    have_int8 = model_files.int8_path(models).is_file()
    ours: dict[int, StageTimes] = {}
    for t in threads:
        c32 = OnnxChain.load(models, threads=t, precision="fp32")
        c8 = OnnxChain.load(models, threads=t, precision="int8") if have_int8 else None
        ours[t] = time_ours(c32, c8, images, f"ours {t} thread{'s' if t > 1 else ''}")
    theirs = time_dlib(DlibChain(), images) if dlib else None
    return format_latency(ours, theirs, len(images), have_int8)


def format_latency(ours: dict[int, StageTimes], theirs: StageTimes | None, n: int, have_int8: bool) -> str:
    lines = [f"latency, median ms over {n} LFW images (250x250) and the same faces padded into 640x480:"]
    stages = [
        "detect",
        "landmarks",
        "align",
        "embed fp32 (1 chip)",
        "embed fp32 (chip+mirror)",
        "embed int8 (1 chip)",
        "embed int8 (chip+mirror)",
        "detect 640x480 full pyramid",
        "detect 640x480 faces>=120px",
        "landmarks 640x480",
        "align 640x480",
    ]
    cols = [ours[t] for t in sorted(ours)]
    head = max(len(s) for s in stages) + 2
    lines.append(" " * head + "".join(f"{c.label:>18}" for c in cols) + (f"{'dlib':>12}" if theirs else ""))
    dlib_map = {
        "detect": "detect",
        "landmarks": "landmarks",
        "align": "align",
        "embed fp32 (1 chip)": "embed",
        "detect 640x480 full pyramid": "detect 640x480",
    }
    for stage in stages:
        if not have_int8 and "int8" in stage:
            continue
        row = stage.ljust(head) + "".join(f"{c.median(stage):>18.2f}" for c in cols)
        if theirs is not None:
            other = dlib_map.get(stage)
            row += f"{theirs.median(other):>12.2f}" if other else f"{'':>12}"
        lines.append(row)

    def total(c: StageTimes, embed: str, detect: str = "detect", frame: bool = False) -> float:
        lm, al = ("landmarks 640x480", "align 640x480") if frame else ("landmarks", "align")
        return c.median(detect) + c.median(lm) + c.median(al) + c.median(embed)

    dlib_total = (
        theirs.median("detect") + theirs.median("landmarks") + theirs.median("align") + theirs.median("embed")
        if theirs is not None
        else math.nan
    )
    dlib_frame = (
        theirs.median("detect 640x480")
        + theirs.median("landmarks")
        + theirs.median("align")
        + theirs.median("embed")
        if theirs is not None
        else math.nan
    )
    lines.append("")
    lines.append(
        "totals = detect + landmarks + align + embed (median ms). Targets: 250x250 <= 16 ms and >= 6x "
        "faster than dlib; 640x480 <= 40 ms; int8 embed <= 2.5 ms per chip"
    )
    header = f"  {'':<34}{'250x250':>9}{'x dlib':>8}{'640 full':>10}{'640 >=120':>11}"
    lines.append(header)
    precisions = ["fp32", "int8"] if have_int8 else ["fp32"]
    for c in cols:
        for p in precisions:
            for what in ("1 chip", "chip+mirror"):
                embed = f"embed {p} ({what})"
                t250 = total(c, embed)
                t640 = total(c, embed, "detect 640x480 full pyramid", frame=True)
                t640l = total(c, embed, "detect 640x480 faces>=120px", frame=True)
                ratio = dlib_total / t250
                lines.append(
                    f"  {f'{c.label}, {p}, {what}':<34}{t250:>6.1f}{_mark(t250 <= 16)}"
                    f"{ratio:>6.1f}{_mark(ratio >= 6)}{t640:>8.1f}{_mark(t640 <= 40)}"
                    f"{t640l:>8.1f}{_mark(t640l <= 40)}"
                )
        if have_int8:
            e8 = c.median("embed int8 (1 chip)")
            lines.append(f"  {c.label}: int8 embed {e8:.2f} ms per chip{_mark(e8 <= 2.5)}")
    if theirs is not None:
        lines.append(f"  {'dlib':<34}{dlib_total:>6.1f}{'':>3}{'':>8}{dlib_frame:>8.1f}")
    lines.append("  (* = target missed)")
    lines.append(
        "  (dlib's threads are its own; onnxruntime spinning is off; numbers from this x86 machine, not a Pi)"
    )
    return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "   " if ok else "  *"
