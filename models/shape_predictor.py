"""dlib's 5-point face landmark model: extracted once to a compact .npz, run in numpy.

The model is a cascade of regression-tree forests (Kazemi & Sullivan). Each stage fits a similarity
transform from the mean shape to the current shape, samples grey pixels at its feature points (each
an offset from one landmark, moved with the shape), then walks every tree: node i goes to 2i+1 when
pixel[a] - pixel[b] > threshold, else to 2i+2, and the leaf's shape delta is added. All trees of a
stage are walked at once here, one array step per tree level.

Coordinates: landmarks are normalised to the detection box ((0,0) its top-left corner, (1,1) its
bottom-right corner, corners inclusive as dlib's rectangles are). Output order is dlib's: outer and
inner corner of the subject's left eye (image right), then of the right eye, then the nose base.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NPZ_ARRAYS = (
    "initial_shape",
    "anchor_idx",
    "deltas",
    "split_idx1",
    "split_idx2",
    "split_thresh",
    "leaves",
)


@dataclass(frozen=True)
class ShapeModel:
    initial_shape: np.ndarray  # (P, 2) float32, normalised box coordinates
    anchor_idx: np.ndarray  # (S, F) int16: the landmark each feature pixel hangs off
    deltas: np.ndarray  # (S, F, 2) float32: its offset from that landmark in mean-shape space
    split_idx1: np.ndarray  # (S, T, N) int16 feature-pixel indices per split node
    split_idx2: np.ndarray  # (S, T, N) int16
    split_thresh: np.ndarray  # (S, T, N) float32
    leaves: np.ndarray  # (S, T, N + 1, P, 2) float32 shape deltas

    @property
    def num_parts(self) -> int:
        return int(self.initial_shape.shape[0])

    @property
    def depth(self) -> int:
        return int(np.log2(self.split_idx1.shape[2] + 1))

    def describe(self) -> dict[str, int]:
        stages, trees, _ = self.split_idx1.shape
        return {
            "stages": stages,
            "trees_per_stage": trees,
            "tree_depth": self.depth,
            "feature_pixels": int(self.anchor_idx.shape[1]),
            "landmarks": self.num_parts,
        }


def load_npz(source: str | Path | bytes) -> ShapeModel:
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    with np.load(handle, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in NPZ_ARRAYS}
    return ShapeModel(**arrays)


# --------------------------------------------------------------------------------------------
# Prediction


def similarity_matrix(from_pts: np.ndarray, to_pts: np.ndarray) -> np.ndarray:
    """The 2x2 scale-rotation part of the least-squares similarity transform (Umeyama 1991)."""
    src = from_pts.astype(np.float64)
    dst = to_pts.astype(np.float64)
    src_c = src - src.mean(axis=0)
    dst_c = dst - dst.mean(axis=0)
    n = len(src)
    sigma_from = (src_c**2).sum() / n
    cov = dst_c.T @ src_c / n
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    det_cov = np.linalg.det(cov)
    if det_cov < 0 or (det_cov == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1, 1] = -1  # d is sorted descending, so the smaller singular value takes the reflection
    rotation = u @ s @ vt
    scale = (d * np.diag(s)).sum() / sigma_from if sigma_from != 0 else 1.0
    return scale * rotation


def to_gray(image: np.ndarray) -> np.ndarray:
    """dlib's intensity of an RGB pixel: the integer mean of the three channels."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:  # (H, W, 3); also (1, N, 3) for sampled pixels
        return (image.astype(np.uint16).sum(axis=2) // 3).astype(np.uint8)
    raise ValueError(f"expected a greyscale or HxWx3 RGB image, got shape {image.shape}")


def _round_half_up(values: np.ndarray) -> np.ndarray:
    return np.floor(values + 0.5).astype(np.intp)


class ShapePredictor:
    """Landmarks for a face box. Holds no per-call state, so one instance can serve several threads."""

    def __init__(self, model: ShapeModel) -> None:
        self.model = model
        self._trees = np.arange(model.split_idx1.shape[1])

    @classmethod
    def load(cls, source: str | Path | bytes) -> ShapePredictor:
        return cls(load_npz(source))

    def predict(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """(P, 2) float landmark (x, y) positions in ``image`` for the face in box (l, t, r, b)."""
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"expected a greyscale or HxWx3 RGB image, got shape {image.shape}")
        left, top, right, bottom = (float(v) for v in box)
        m = self.model
        rows, cols = image.shape[:2]
        shape = m.initial_shape.astype(np.float32).copy()
        origin = np.array([left, top])
        extent = np.array([right - left, bottom - top])
        n_splits = m.split_idx1.shape[2]
        for stage in range(m.split_idx1.shape[0]):
            tform = similarity_matrix(m.initial_shape, shape).astype(np.float32)
            pts = m.deltas[stage] @ tform.T + shape[m.anchor_idx[stage]]
            xy = _round_half_up(origin + pts.astype(np.float64) * extent)
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < cols) & (xy[:, 1] >= 0) & (xy[:, 1] < rows)
            pixels = np.zeros(len(xy), dtype=np.float32)
            # Only the sampled pixels are converted to grey, not the whole frame.
            pixels[inside] = to_gray(image[xy[inside, 1], xy[inside, 0]][None])[0]
            node = np.zeros_like(self._trees)
            idx1, idx2, thresh = m.split_idx1[stage], m.split_idx2[stage], m.split_thresh[stage]
            while True:
                go_left = (
                    pixels[idx1[self._trees, node]] - pixels[idx2[self._trees, node]]
                    > thresh[self._trees, node]
                )
                node = 2 * node + np.where(go_left, 1, 2)
                if node[0] >= n_splits:
                    break
            shape += m.leaves[stage][self._trees, node - n_splits].sum(axis=0)
        return origin + shape.astype(np.float64) * extent

    def predict_rounded(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """As dlib reports them: integer pixel positions."""
        return _round_half_up(self.predict(image, box))
