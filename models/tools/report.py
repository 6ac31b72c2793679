"""Showing evaluation results: the accuracy table and the DET plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.tools.metrics import TARGET_FMRS, Evaluation, fmr_key


@dataclass(frozen=True)
class DetCurve:
    label: str
    fmr: np.ndarray
    fnmr: np.ndarray
    colour_bgr: tuple[int, int, int]


_PALETTE: tuple[tuple[int, int, int], ...] = (
    (180, 80, 20),  # blue
    (40, 40, 220),  # red
    (40, 150, 40),  # green
    (0, 140, 255),  # orange
    (160, 60, 160),  # purple
    (90, 90, 90),  # grey
    (0, 0, 0),  # black
    (200, 170, 0),  # teal
    (30, 90, 140),  # brown
)


def palette(i: int) -> tuple[int, int, int]:
    return _PALETTE[i % len(_PALETTE)]


def draw_det(
    curves: Sequence[DetCurve],
    path: Path,
    *,
    title: str = "DET",
    fmr_range: tuple[float, float] = (1e-6, 1e-1),
    fnmr_range: tuple[float, float] | None = None,
    size: tuple[int, int] = (960, 720),
    marks: Sequence[float] = TARGET_FMRS,
) -> Path:
    """A DET plot (FNMR against FMR, both log10) as a PNG, drawn with OpenCV only."""
    import cv2

    width, height = size
    left, right, top, bottom = 90, 30, 50, 70
    img = np.full((height, width, 3), 255, np.uint8)
    if fnmr_range is None:
        lows = [float(c.fnmr[c.fmr <= fmr_range[1]].min()) for c in curves if (c.fmr <= fmr_range[1]).any()]
        low = 10 ** math.floor(math.log10(max(min(lows), 1e-6))) if lows else 1e-3
        fnmr_range = (low, 1.0)
    x0, x1 = math.log10(fmr_range[0]), math.log10(fmr_range[1])
    y0, y1 = math.log10(fnmr_range[0]), math.log10(fnmr_range[1])

    def to_px(fmr: np.ndarray, fnmr: np.ndarray) -> np.ndarray:
        x = left + (np.log10(fmr) - x0) / (x1 - x0) * (width - left - right)
        y = height - bottom - (np.log10(fnmr) - y0) / (y1 - y0) * (height - top - bottom)
        return np.stack([x, y], axis=1)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for e in range(math.ceil(x0), math.floor(x1) + 1):
        x = int(np.rint(to_px(np.array([10.0**e]), np.array([fnmr_range[0]]))[0, 0]))
        cv2.line(img, (x, top), (x, height - bottom), (225, 225, 225), 1)
        cv2.putText(img, f"1e{e}", (x - 18, height - bottom + 22), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for e in range(math.ceil(y0), math.floor(y1) + 1):
        y = int(np.rint(to_px(np.array([fmr_range[0]]), np.array([10.0**e]))[0, 1]))
        cv2.line(img, (left, y), (width - right, y), (225, 225, 225), 1)
        cv2.putText(img, f"1e{e}", (left - 50, y + 5), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for mark in marks:
        if fmr_range[0] <= mark <= fmr_range[1]:
            x = int(np.rint(to_px(np.array([mark]), np.array([fnmr_range[0]]))[0, 0]))
            for y in range(top, height - bottom, 12):
                cv2.line(img, (x, y), (x, min(y + 6, height - bottom)), (150, 150, 150), 1)
    cv2.rectangle(img, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    cv2.putText(img, title, (left, 32), font, 0.65, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(
        img, "FMR (false match rate)", (width // 2 - 90, height - 22), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA
    )
    cv2.putText(img, "FNMR", (12, 32), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    clip = np.array([[left, top], [width - right, height - bottom]], float)
    for i, curve in enumerate(curves):
        ok = (curve.fmr > 0) & (curve.fnmr > 0)
        pts = to_px(curve.fmr[ok], curve.fnmr[ok])
        inside = (
            (pts[:, 0] >= clip[0, 0])
            & (pts[:, 0] <= clip[1, 0])
            & (pts[:, 1] >= clip[0, 1])
            & (pts[:, 1] <= clip[1, 1])
        )
        pts = pts[inside]
        if len(pts) >= 2:
            poly = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [poly], False, curve.colour_bgr, 2, cv2.LINE_AA)
        ly = top + 22 + 22 * i
        lx = width - right - 330
        cv2.line(img, (lx, ly - 5), (lx + 30, ly - 5), curve.colour_bgr, 3, cv2.LINE_AA)
        cv2.putText(img, curve.label, (lx + 38, ly), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path


def format_table(results: Sequence[Evaluation], targets: Sequence[float] = TARGET_FMRS) -> str:
    """Pipelines side by side: one column each."""
    rows: list[tuple[str, list[str]]] = [
        ("images / FTA images", [f"{r.images} / {r.fta_images}" for r in results]),
        ("genuine pairs (FTA)", [f"{r.n_genuine:,} ({r.genuine_fta:,})" for r in results]),
        ("impostor pairs (FTA, not compared)", [f"{r.n_impostor:,} ({r.impostor_fta:,})" for r in results]),
    ]
    for t in targets:
        pts = [r.point(t) for r in results]
        rows.append(
            (
                f"FNMR @ FMR {t:g}",
                [f"{100 * p.fnmr:.3f}% ({p.false_non_matches:,})" for p in pts],
            )
        )
        rows.append(("  FNMR acquired-only", [f"{100 * p.fnmr_acquired:.3f}%" for p in pts]))
        rows.append(("  FNMR person-balanced", [f"{100 * p.fnmr_person_balanced:.3f}%" for p in pts]))
        rows.append(
            (
                "  threshold (FM/pairs)",
                [f"{p.threshold:.6f} ({p.false_matches:,}/{p.n_impostor:,})" for p in pts],
            )
        )
    rows.append(("EER (threshold)", [f"{100 * r.eer.eer:.3f}% ({r.eer.threshold:.4f})" for r in results]))
    official = [r.official for r in results]
    if all(official):
        key = fmr_key(1e-3)
        rows.append(
            (
                "official 2200: FNMR@all-pairs t(1e-3)",
                [
                    f"{100 * o['at_all_pairs_thresholds'][key]['fnmr']:.2f}% "
                    f"FMR {100 * o['at_all_pairs_thresholds'][key]['fmr']:.2f}%"
                    for o in official
                ],
            )
        )
        rows.append(
            (
                "official 2200: EER / acc",
                [
                    f"{100 * (o['eer'] or 0):.2f}% / {100 * (o['accuracy_at_eer_threshold'] or 0):.2f}%"
                    for o in official
                ],
            )
        )
    head = max(len(r[0]) for r in rows)
    widths = [max(len(r.name), *(len(row[1][i]) for row in rows)) for i, r in enumerate(results)]
    lines = [" " * head + " | " + " | ".join(r.name.ljust(w) for r, w in zip(results, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    for label, cells in rows:
        lines.append(
            label.ljust(head) + " | " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        )
    return "\n".join(lines)
