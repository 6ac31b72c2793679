"""The mmod detector's input: an image pyramid tiled into one image, exactly as dlib's input layer does it.

dlib's ``input_rgb_image_pyramid<pyramid_down<6>>`` normalises the image to (pixel - mean)/256,
places it in the top-left of a zero canvas (11 px outer border), then adds levels of floor(5/6) the
previous size, each an align-corners bilinear resize of the previous level (not of the original),
down to a height of 5: first down a column below the image, then back up a second column on the
right. Detector output cell p sits at 8p + 14 in that canvas, the centre of an 80x80 window; a window
is mapped back to the image through the level that contains (or is nearest to) its centre, each level
up being p * 1.2 + 0.3. Boxes then go through dlib's greedy non-maximum suppression.

Matching all of this is what makes the boxes identical to dlib's; ``select_levels`` then lets a
caller skip levels that cannot hold a face of the size it cares about.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PYRAMID_N = 6  # dlib's pyramid_down<6>: each level (N-1)/N of the previous
RATE = (PYRAMID_N - 1.0) / PYRAMID_N
UP_RATE = PYRAMID_N / (PYRAMID_N - 1.0)
UP_OFFSET = 0.3
MIN_LEVEL_HEIGHT = 5
PADDING = 10
OUTER_PADDING = 11
DEFAULT_MEAN_RGB = (122.782, 117.001, 104.298)


@dataclass(frozen=True)
class Rect:
    """An integer rectangle with inclusive corners, as dlib's ``rectangle``."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    def intersect(self, other: Rect) -> Rect:
        return Rect(
            max(self.left, other.left),
            max(self.top, other.top),
            min(self.right, other.right),
            min(self.bottom, other.bottom),
        )

    def union_box(self, other: Rect) -> Rect:
        return Rect(
            min(self.left, other.left),
            min(self.top, other.top),
            max(self.right, other.right),
            max(self.bottom, other.bottom),
        )

    def is_empty(self) -> bool:
        return self.left > self.right or self.top > self.bottom

    def contains(self, x: float, y: float) -> bool:
        return self.left <= x <= self.right and self.top <= y <= self.bottom

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)


def round_half_up(value: float) -> int:
    """dlib's drectangle -> rectangle conversion: floor(v + 0.5)."""
    return math.floor(value + 0.5)


def level_sizes(nr: int, nc: int) -> list[tuple[int, int]]:
    """(rows, cols) of every pyramid level, the image itself first."""
    sizes = [(nr, nc)]
    while True:
        nr = math.floor(RATE * nr)
        nc = math.floor(RATE * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_HEIGHT:
            return sizes
        sizes.append((nr, nc))


def tile_layout(
    nr: int, nc: int, padding: int = PADDING, outer_padding: int = OUTER_PADDING
) -> tuple[list[Rect], int, int]:
    """Where each level goes in the tiled canvas, and the canvas's (rows, cols)."""
    if nr * nc == 0:
        return [], 0, 0
    sizes = level_sizes(nr, nc)
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    first_h, first_w = sizes[0]
    height = 0
    prev_width = 0
    for h, w in sizes:
        # Go down the first column until a level fits beside the previous one and the first column
        # already holds at least half of what is left, then double back up a second column.
        if w <= first_w - prev_width - padding and (height - first_h) * 2 >= total_height - first_h:
            break
        height += h + padding
        prev_width = w
    height -= padding
    canvas_nr = height + 2 * outer_padding
    canvas_nc = first_w + 2 * outer_padding

    rects: list[Rect] = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        h, w = sizes[i]
        rects.append(Rect(outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    while i < len(sizes):
        h, w = sizes[i]
        right, bottom = outer_padding + first_w - 1, y - 1
        rect = Rect(right - (w - 1), bottom - (h - 1), right, bottom)
        if not rects[0].intersect(rect).is_empty():
            break  # the last level would overlap the image itself: dlib drops it and all after
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, canvas_nr, canvas_nc


def resize_align_corners(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of (C, H, W) float32 planes with dlib's align-corners sampling.

    Separable (rows, then columns); dlib weighs the four neighbours in one step, which differs
    only in float rounding.
    """
    _, in_h, in_w = src.shape
    ys = np.arange(out_h, dtype=np.float64) * ((in_h - 1) / max(out_h - 1, 1))
    xs = np.arange(out_w, dtype=np.float64) * ((in_w - 1) / max(out_w - 1, 1))
    top = np.floor(ys).astype(np.intp)
    left = np.floor(xs).astype(np.intp)
    bottom = np.minimum(top + 1, in_h - 1)
    right = np.minimum(left + 1, in_w - 1)
    fy = (ys - top).astype(np.float32)[None, :, None]
    fx = (xs - left).astype(np.float32)[None, None, :]
    upper = np.take(src, top, axis=1)
    rows = upper + fy * (np.take(src, bottom, axis=1) - upper)
    lefts = np.take(rows, left, axis=2)
    return lefts + fx * (np.take(rows, right, axis=2) - lefts)


def normalise(image_rgb: np.ndarray, mean_rgb: Sequence[float] = DEFAULT_MEAN_RGB) -> np.ndarray:
    """uint8 HxWx3 RGB -> (3, H, W) float32 (pixel - mean) / 256, dlib's input scaling."""
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image_rgb.shape}")
    planes = image_rgb.transpose(2, 0, 1).astype(np.float32)
    planes -= np.asarray(mean_rgb, dtype=np.float32)[:, None, None]
    planes /= np.float32(256.0)
    return planes


@dataclass(frozen=True)
class TiledPyramid:
    tensor: np.ndarray  # (1, 3, rows, cols) float32, the detector's input
    rects: list[Rect]  # where each level sits in the full canvas
    levels: tuple[int, ...]  # which levels were filled (all of them unless restricted)
    origin: tuple[int, int]  # (x, y) of tensor[0, :, 0, 0] in the full canvas (a crop starts there)


def build(
    image_rgb: np.ndarray,
    mean_rgb: Sequence[float] = DEFAULT_MEAN_RGB,
    levels: Sequence[int] | None = None,
    cell_stride: int = 8,
) -> TiledPyramid:
    """The tiled pyramid for ``image_rgb``; with ``levels``, only those levels and a crop around them.

    The crop keeps its origin on a multiple of ``cell_stride`` so detector cells land on the same
    image positions as in dlib's full canvas; scores near a crop edge can differ slightly from dlib's.
    """
    nr, nc = image_rgb.shape[:2]
    rects, canvas_nr, canvas_nc = tile_layout(nr, nc)
    wanted = (
        tuple(range(len(rects))) if levels is None else tuple(sorted(set(levels) & set(range(len(rects)))))
    )
    if not wanted:
        return TiledPyramid(np.zeros((1, 3, 0, 0), np.float32), rects, (), (0, 0))
    if levels is None:
        x0, y0, x1, y1 = 0, 0, canvas_nc, canvas_nr
    else:
        x0 = min(rects[i].left for i in wanted) - OUTER_PADDING
        y0 = min(rects[i].top for i in wanted) - OUTER_PADDING
        x1 = max(rects[i].right for i in wanted) + OUTER_PADDING + 1
        y1 = max(rects[i].bottom for i in wanted) + OUTER_PADDING + 1
        x0 = max(0, x0 - x0 % cell_stride)
        y0 = max(0, y0 - y0 % cell_stride)
        x1, y1 = min(x1, canvas_nc), min(y1, canvas_nr)
    canvas = np.zeros((3, y1 - y0, x1 - x0), dtype=np.float32)
    level = normalise(image_rgb, mean_rgb)
    for index, rect in enumerate(rects[: max(wanted) + 1]):
        if index:
            level = resize_align_corners(level, rect.height, rect.width)
        if index in wanted:
            canvas[:, rect.top - y0 : rect.bottom + 1 - y0, rect.left - x0 : rect.right + 1 - x0] = level
    return TiledPyramid(canvas[None], rects, wanted, (x0, y0))


def select_levels(
    n_levels: int, window: int, min_face_px: float | None, max_face_px: float | None
) -> list[int]:
    """Levels whose detection window (``window`` * 1.2**level image px) can match a face in range.

    One level of slack on each side, since a face is found at the level nearest its size.
    """
    lo, hi = 0, n_levels - 1
    if min_face_px is not None and min_face_px > window:
        lo = max(0, math.floor(math.log(min_face_px / window, UP_RATE)) - 1)
    if max_face_px is not None:
        hi = min(hi, max(0, math.ceil(math.log(max(max_face_px, 1) / window, UP_RATE)) + 1))
    return list(range(lo, hi + 1))


def _nearest_rect(rects: Sequence[Rect], x: float, y: float) -> int:
    best, best_dist = 0, math.inf
    for i, rect in enumerate(rects):
        if rect.contains(x, y):
            return i
        nx = min(max(x, rect.left), rect.right)
        ny = min(max(y, rect.top), rect.bottom)
        dist = math.hypot(nx - x, ny - y)
        if dist < best_dist:
            best, best_dist = i, dist
    return best


def canvas_to_image(
    rects: Sequence[Rect], left: float, top: float, right: float, bottom: float
) -> tuple[int, tuple[float, float, float, float]]:
    """Map a canvas-space box to (level, image-space box) as dlib's tiled_pyramid_to_image does."""
    cx = round_half_up((left + right) / 2)
    cy = round_half_up((top + bottom) / 2)
    level = _nearest_rect(rects, cx, cy)
    ox, oy = rects[level].left, rects[level].top
    box = [left - ox, top - oy, right - ox, bottom - oy]
    for _ in range(level):
        box = [v * UP_RATE + UP_OFFSET for v in box]
    return level, (box[0], box[1], box[2], box[3])


def boxes_overlap(a: Rect, b: Rect, iou_thresh: float, covered_thresh: float) -> bool:
    """dlib's test_box_overlap: 'IoU' over the bounding box of both, or either box mostly covered."""
    inner = a.intersect(b)
    if inner.is_empty():
        return False
    inner_area = inner.area
    outer_area = a.union_box(b).area
    return (
        inner_area / outer_area > iou_thresh
        or inner_area / a.area > covered_thresh
        or inner_area / b.area > covered_thresh
    )


def non_max_suppression(
    candidates: Sequence[tuple[Rect, float]], iou_thresh: float, covered_thresh: float
) -> list[tuple[Rect, float]]:
    """Greedy, highest score first; a box overlapping any kept one is dropped."""
    ordered = sorted(candidates, key=lambda d: d[1], reverse=True)
    kept: list[tuple[Rect, float]] = []
    for rect, score in ordered:
        if any(boxes_overlap(k, rect, iou_thresh, covered_thresh) for k, _ in kept):
            continue
        kept.append((rect, score))
    return kept


def detections(
    scores: np.ndarray,
    pyramid: TiledPyramid,
    *,
    threshold: float = 0.0,
    window: tuple[int, int] = (80, 80),
    cell_stride: int = 8,
    cell_offset: int = 14,
    iou_thresh: float = 0.3382761351109955,
    covered_thresh: float = 1.0,
) -> list[tuple[Rect, float]]:
    """Turn the detector's (OH, OW) score map into image boxes after NMS, as dlib's loss_mmod does."""
    rows, cols = np.nonzero(scores > threshold)
    half_w = (window[0] - 1) / 2
    half_h = (window[1] - 1) / 2
    ox, oy = pyramid.origin
    candidates: list[tuple[Rect, float]] = []
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        px = c * cell_stride + cell_offset + ox
        py = r * cell_stride + cell_offset + oy
        level, box = canvas_to_image(pyramid.rects, px - half_w, py - half_h, px + half_w, py + half_h)
        if level not in pyramid.levels:
            continue  # a level left out of a restricted pyramid: its cells saw no image
        rect = Rect(*(round_half_up(v) for v in box))
        candidates.append((rect, float(scores[r, c])))
    return non_max_suppression(candidates, iou_thresh, covered_thresh)
