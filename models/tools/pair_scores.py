"""Scores of ALL same-person and ALL different-person pairs of an embedded set (or of a pair list).

Impostor scores are computed block by block and only the highest ones are kept exactly (the
operating points an e-gate cares about, FMR 1e-2 and below, live there), so memory stays at one
block matrix plus that tail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.scoring import pairwise_similarity, similarity
from models.tools.embeddings import Embeddings
from models.tools.lfw import PairList, genuine_pairs, impostor_pair_count


@dataclass(frozen=True)
class Scores:
    """Genuine scores (all) and the highest impostor scores (exact), for one pipeline on one set."""

    genuine: np.ndarray  # ascending float64; -inf where either side failed to acquire
    impostor_top: np.ndarray  # descending float64: the highest impostor scores, exactly
    n_impostor: int  # impostor pairs compared (both sides acquired)
    genuine_fta: int = 0  # genuine pairs with an FTA (inside ``genuine`` as -inf)
    impostor_fta: int = 0  # impostor pairs not compared because of an FTA (not in n_impostor)
    # identity of each genuine pair, aligned with ``genuine`` (None when unknown): lets FNMR be
    # weighted per person, since on LFW three people own 82% of the same-person pairs
    genuine_labels: np.ndarray | None = None

    @property
    def n_genuine(self) -> int:
        return len(self.genuine)

    @property
    def complete(self) -> bool:
        return len(self.impostor_top) == self.n_impostor

    @property
    def lowest_exact(self) -> float:
        """Thresholds above this get exact impostor counts (any threshold if every score is kept)."""
        if self.complete or not len(self.impostor_top):
            return -math.inf
        return float(self.impostor_top[-1])

    @classmethod
    def from_arrays(
        cls,
        genuine: np.ndarray | Sequence[float],
        impostor: np.ndarray | Sequence[float],
        genuine_fta: int = 0,
    ) -> Scores:
        """Every score given (small sets, synthetic tests). A -inf impostor is an FTA: not compared."""
        gen = np.sort(np.asarray(genuine, dtype=float))
        imp_all = np.asarray(impostor, dtype=float)
        if np.isnan(gen).any() or np.isnan(imp_all).any():
            raise ValueError("NaN score")
        imp = np.sort(imp_all[np.isfinite(imp_all)])[::-1]
        return cls(gen, imp, len(imp), int(genuine_fta), len(imp_all) - len(imp))

    def false_matches(self, threshold: float | np.ndarray) -> np.ndarray | int:
        """Impostor pairs with score >= threshold (exact only above :attr:`lowest_exact`)."""
        t = np.asarray(threshold, float)
        if not self.complete and np.any(t <= self.lowest_exact):
            raise ValueError(
                f"threshold {np.min(t):.6f} is below the kept impostor tail ({self.lowest_exact:.6f}): "
                "keep a larger fraction of impostor scores"
            )
        ascending = self.impostor_top[::-1]
        count = len(ascending) - np.searchsorted(ascending, t, side="left")
        return int(count) if count.ndim == 0 else count

    def person_balanced_fnmr(self, threshold: float) -> float:
        """FNMR with every person weighted equally (the mean of each person's own FNMR)."""
        if self.genuine_labels is None or not len(self.genuine):
            return math.nan
        below = (self.genuine < threshold).astype(float)
        _, inverse, counts = np.unique(self.genuine_labels, return_inverse=True, return_counts=True)
        per_person = np.bincount(inverse, weights=below) / counts
        return float(per_person.mean())

    def false_non_matches(self, threshold: float | np.ndarray) -> np.ndarray | int:
        """Genuine pairs with score < threshold, FTAs included."""
        count = np.searchsorted(self.genuine, np.asarray(threshold, float), side="left")
        return int(count) if np.ndim(count) == 0 else count


def _genuine_scores(vectors: np.ndarray, acquired: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    out = np.full(len(ia), -np.inf)
    both = acquired[ia] & acquired[ib]
    step = 1 << 16
    for s in range(0, len(ia), step):
        sl = slice(s, s + step)
        ok = both[sl]
        chunk = np.full(ok.shape, -np.inf)
        chunk[ok] = similarity(vectors[ia[sl][ok]], vectors[ib[sl][ok]])
        out[sl] = chunk
    return out


def score_all_pairs(
    embeddings: Embeddings,
    labels: np.ndarray,
    usable: np.ndarray,
    *,
    keep_fraction: float = 0.1,
    min_keep: int = 100_000,
    block_rows: int = 512,
) -> Scores:
    """All genuine and all impostor pairs of the usable images.

    Impostors are scored one (block_rows x N) float32 block at a time; of those only the top
    ``keep_fraction`` (at least ``min_keep``) is kept, which covers every FMR from 1 in a million up
    to ``keep_fraction`` exactly.
    """
    vectors, acquired = embeddings.vectors, embeddings.acquired
    ia, ib = genuine_pairs(labels, usable)
    raw = _genuine_scores(vectors, acquired, ia, ib)
    order = np.argsort(raw, kind="stable")
    genuine, genuine_labels = raw[order], labels[ia][order]
    genuine_fta = int((~(acquired[ia] & acquired[ib])).sum())

    live = np.flatnonzero(usable & acquired)
    n_impostor = impostor_pair_count(labels[live], np.ones(len(live), bool))
    impostor_fta = impostor_pair_count(labels, usable) - n_impostor
    keep = int(min(n_impostor, max(min_keep, math.ceil(keep_fraction * n_impostor))))
    v = np.ascontiguousarray(vectors[live], dtype=np.float32)
    lab = labels[live]
    kept = np.zeros(0, np.float32)
    pending: list[np.ndarray] = []
    pending_size = 0
    seen = 0
    for r0 in range(0, len(live), block_rows):
        r1 = min(r0 + block_rows, len(live))
        block = pairwise_similarity(v[r0:r1], v[r0:])
        rows = np.arange(r0, r1)[:, None]
        cols = np.arange(r0, len(live))[None, :]
        mask = (cols > rows) & (lab[r0:r1, None] != lab[None, r0:])
        values = block[mask]
        seen += len(values)
        if keep < len(values):
            values = np.partition(values, len(values) - keep)[len(values) - keep :]
        pending.append(values)
        pending_size += len(values)
        if pending_size > 2 * keep:
            kept = _top(np.concatenate([kept, *pending]), keep)
            pending, pending_size = [], 0
    kept = _top(np.concatenate([kept, *pending]), keep)
    if seen != n_impostor:
        raise AssertionError(f"scored {seen} impostor pairs, expected {n_impostor}")
    return Scores(
        genuine=genuine,
        impostor_top=np.sort(kept.astype(np.float64))[::-1],
        n_impostor=n_impostor,
        genuine_fta=genuine_fta,
        impostor_fta=impostor_fta,
        genuine_labels=genuine_labels,
    )


def _top(values: np.ndarray, keep: int) -> np.ndarray:
    if len(values) <= keep:
        return values
    return np.partition(values, len(values) - keep)[len(values) - keep :]


def score_pair_list(embeddings: Embeddings, pairs: PairList, labels: np.ndarray | None = None) -> Scores:
    """Scores for an explicit pair list (e.g. LFW's official pairs); FTAs as above."""
    both = embeddings.acquired[pairs.a] & embeddings.acquired[pairs.b]
    scores = np.full(len(pairs.a), -np.inf)
    scores[both] = similarity(embeddings.vectors[pairs.a[both]], embeddings.vectors[pairs.b[both]])
    gen = scores[pairs.same]
    order = np.argsort(gen, kind="stable")
    imp = scores[~pairs.same]
    return Scores(
        genuine=gen[order],
        impostor_top=np.sort(imp[both[~pairs.same]])[::-1],
        n_impostor=int(both[~pairs.same].sum()),
        genuine_fta=int((~both[pairs.same]).sum()),
        impostor_fta=int((~both[~pairs.same]).sum()),
        genuine_labels=None if labels is None else labels[pairs.a[pairs.same]][order],
    )
