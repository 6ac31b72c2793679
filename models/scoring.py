"""THE comparison score of two face descriptors, shared by the kiosk's matcher and the evaluation.

Run-time code (numpy only). The thresholds in ``models/calibration/dlib_resnet_v1.json`` are on
this scale, so nothing may re-implement it.
"""

from __future__ import annotations

import numpy as np

SCORE_NAME = "1 - euclidean/2"  # the tag a threshold carries


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """THE comparison score of two face descriptors: ``1 - euclidean_distance(a, b) / 2``.

    Higher means more similar, 1 is identical; a comparison matches when ``similarity >= threshold``.
    dlib's own rule "same person if distance < 0.6" is ``similarity > 0.7`` on this scale, and the
    distance is ``2 * (1 - score)``. The scale is the one the production pipeline already used
    (``models.pipeline``), so recorded scores keep their meaning. Descriptors are the raw
    (un-normalised) 128-D ResNet outputs, or with flip augmentation the mean of the chip's and its
    mirror image's outputs (not re-normalised). Broadcasts over leading axes; computed in float64 so
    the result does not depend on the caller's dtype.

    The production matcher must call this function (not re-implement it): the thresholds in
    ``models/calibration/dlib_resnet_v1.json`` are on this scale.
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    score = 1.0 - np.sqrt(np.einsum("...i,...i->...", diff, diff)) / 2.0
    return float(score) if np.ndim(score) == 0 else score


def pairwise_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`similarity` for every row of ``a`` against every row of ``b``, as an (n, m) float32 block.

    Uses |a|^2 + |b|^2 - 2 a.b so one block is a single matrix product; agrees with
    :func:`similarity` to about 1e-6 at the distances that matter (tested), below the 6-decimal
    rounding of the thresholds.
    """
    a32 = np.asarray(a, dtype=np.float32)
    b32 = np.asarray(b, dtype=np.float32)
    sq = (a32 * a32).sum(axis=1)[:, None] + (b32 * b32).sum(axis=1)[None, :] - 2.0 * (a32 @ b32.T)
    np.maximum(sq, 0.0, out=sq)
    np.sqrt(sq, out=sq)
    sq *= np.float32(0.5)
    return np.subtract(np.float32(1.0), sq, out=sq)


SCORE_DEFINITION = {
    "function": "models.scoring.similarity",
    "name": SCORE_NAME,
    "definition": "1 - (euclidean distance between the two 128-D descriptors) / 2; raw descriptors",
    "higher_is_more_similar": True,
    "decision": "match when score >= threshold",
    "dlib_equivalent": "dlib's 'distance < 0.6' is score > 0.7",
}
