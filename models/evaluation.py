"""Measuring a face verifier: pairs, scores, FMR/FNMR, EER, DET curves and the calibrated thresholds.

The harness takes any ``embed_fn(rgb) -> descriptor | None`` (None = failure to acquire), embeds every
image of a labelled set once (cached under ``var/``), and scores ALL same-person pairs and ALL
different-person pairs (about 45 million on LFW DevTrain). Impostor scores are computed block by
block and only the highest ones are kept exactly (the operating points an e-gate cares about, FMR
1e-2 and below, live there), so memory stays at one block matrix plus that tail.

Conventions (ISO/IEC 19795-1 vocabulary):

* The score is :func:`similarity` (higher = more similar) and a comparison matches when
  ``score >= threshold``. The production matcher MUST use the same function, or the calibrated
  thresholds in ``models/calibration/*.json`` mean nothing.
* On LFW three people (Bush, Powell, Blair) own 82% of all same-person pairs, so FNMR over all pairs
  mostly describes them; ``fnmr_person_balanced`` weights every person equally and is the better
  guide to a population of travellers. The official pair list samples people more evenly.
* A failure to acquire (FTA) on either side of a genuine pair counts as a false non-match in FNMR;
  ``fnmr_acquired`` gives the rate over the pairs where both faces were acquired. Impostor pairs with
  an FTA never reach the comparator and can never match, so they are left out of the FMR denominator
  (counted separately): that makes the thresholds slightly stricter than counting them as
  non-matches would.
* The threshold for a target FMR allows at most ``floor(target * n_impostor)`` impostor scores at or
  above it, rounded UP to 6 decimals (so the FMR it gives on this data never exceeds the target).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
DEFAULT_CACHE_DIR = REPO_ROOT / "var" / "eval"
TARGET_FMRS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
THRESHOLD_DECIMALS = 6

EmbedFn = Callable[[np.ndarray], "np.ndarray | None"]


# --------------------------------------------------------------------------------------------
# The score


SCORE_NAME = "1 - euclidean/2"  # the tag a threshold carries; models.pipeline.SCORE_DEFINITION matches it


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
    ``models/calibration/*.json`` are on this scale.
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


# --------------------------------------------------------------------------------------------
# The data set: LFW DevTrain with its known label errors


@dataclass(frozen=True)
class LabelErrata:
    """Known label errors of a face set: images to drop entirely and names that are one person."""

    excluded_images: frozenset[str]  # image stems, e.g. "Anja_Paerson_0001"
    same_person: tuple[tuple[str, ...], ...]  # groups of folder names filed for one person

    def canonical_names(self) -> dict[str, str]:
        return {name: group[0] for group in self.same_person for name in group}


# From the README of the shared LFW copy (the official errata). Duplicated photos filed under two
# names: one of the two labels is wrong and we cannot tell which, so both images go. Mislabelled
# images go. One person under two names: merged into one identity, so pairs across the two names
# are genuine pairs rather than false "impostor" pairs.
LFW_ERRATA = LabelErrata(
    excluded_images=frozenset(
        {
            "Bart_Hendricks_0001",
            "Ricky_Ray_0001",
            "Carlos_Beltran_0001",
            "Raul_Ibanez_0001",
            "Emmy_Rossum_0001",
            "Eva_Amurri_0001",
            "Recep_Tayyip_Erdogan_0004",
            "Anja_Paerson_0001",
            "Janica_Kostelic_0001",
            "Michael_Schumacher_0008",
            "Mahmoud_Abbas_0012",
            "Andrew_Gilligan_0001",
            "Eric_Christian_Olsen_0001",
            "Shinya_Taniguchi_0001",
            "Sung_Hong_Choi_0001",
        }
    ),
    same_person=(
        ("Wang_Yingfan", "Yingfan_Wang"),
        ("Wang_Nan", "Nan_Wang"),
        ("Talisa_Bratt", "Talisa_Soto"),
        ("John_Gruden", "Jon_Gruden"),
    ),
)


@dataclass(frozen=True)
class Dataset:
    """A labelled image set. Index i everywhere (embeddings, caches) is ``names[i]``."""

    dataset_id: str
    root: Path
    names: tuple[str, ...]  # image stems, sorted
    paths: tuple[Path, ...]
    labels: np.ndarray  # (N,) int32 identity after merging same-person names
    usable: np.ndarray  # (N,) bool: False for images excluded as label errors
    excluded: tuple[str, ...]  # stems of the excluded images present in this set
    merged: tuple[tuple[str, ...], ...]  # same-person groups with more than one name present
    fingerprint: str  # sha256 over the image list and bytes (and the pair list)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, count: int) -> Dataset:
        """The first ``count`` images (sorted by name, so whole people stay together)."""
        count = min(count, len(self.names))
        return Dataset(
            dataset_id=f"{self.dataset_id}[:{count}]",
            root=self.root,
            names=self.names[:count],
            paths=self.paths[:count],
            labels=self.labels[:count],
            usable=self.usable[:count],
            excluded=tuple(n for n in self.excluded if n in set(self.names[:count])),
            merged=self.merged,
            fingerprint=self.fingerprint,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.dataset_id,
            "images": len(self.names),
            "people": len(np.unique(self.labels)),
            "excluded_images": list(self.excluded),
            "merged_names": [list(g) for g in self.merged],
            "fingerprint_sha256": self.fingerprint,
        }


def load_lfw(root: str | os.PathLike[str], errata: LabelErrata = LFW_ERRATA) -> Dataset:
    """The LFW-style set under ``root`` (``images/<Person>/<Person>_NNNN.jpg``)."""
    base = Path(root)
    image_dir = base / "images"
    paths = sorted(image_dir.glob("*/*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no images under {image_dir}")
    canonical = errata.canonical_names()
    names = tuple(p.stem for p in paths)
    people = [canonical.get(p.parent.name, p.parent.name) for p in paths]
    _, labels = np.unique(np.asarray(people), return_inverse=True)
    usable = np.array([n not in errata.excluded_images for n in names], dtype=bool)
    present = {p.parent.name for p in paths}
    merged = tuple(g for g in errata.same_person if sum(n in present for n in g) > 1)
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.parent.name}/{path.name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    pairs_file = base / "pairsDevTrain.txt"
    if pairs_file.is_file():
        digest.update(pairs_file.read_bytes())
    return Dataset(
        dataset_id=f"lfw-devtrain-deepfunneled/{base.name}",
        root=base,
        names=names,
        paths=tuple(paths),
        labels=labels.astype(np.int32),
        usable=usable,
        excluded=tuple(n for n in names if n in errata.excluded_images),
        merged=merged,
        fingerprint=digest.hexdigest(),
    )


@dataclass(frozen=True)
class PairList:
    """Explicit pairs (indices into a Dataset) with their truth."""

    a: np.ndarray
    b: np.ndarray
    same: np.ndarray  # bool
    touching_errata: int = 0  # pairs with an excluded image on either side (kept: it is the official list)


def official_pairs(dataset: Dataset, pairs_file: Path | None = None) -> PairList:
    """LFW's pairs list: a count line, then ``name i j`` (same) and ``name1 i name2 j`` (different) lines."""
    source = pairs_file if pairs_file is not None else dataset.root / "pairsDevTrain.txt"
    index = {name: i for i, name in enumerate(dataset.names)}
    a: list[int] = []
    b: list[int] = []
    same: list[bool] = []
    lines = source.read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            first, second, is_same = (parts[0], int(parts[1])), (parts[0], int(parts[2])), True
        elif len(parts) == 4:
            first, second, is_same = (parts[0], int(parts[1])), (parts[2], int(parts[3])), False
        else:
            continue
        a.append(index[f"{first[0]}_{first[1]:04d}"])
        b.append(index[f"{second[0]}_{second[1]:04d}"])
        same.append(is_same)
    ia, ib = np.asarray(a, np.int64), np.asarray(b, np.int64)
    touching = int((~dataset.usable[ia] | ~dataset.usable[ib]).sum())
    return PairList(ia, ib, np.asarray(same, bool), touching)


def genuine_pairs(labels: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered same-identity pair (i < j) of usable images, as two index arrays."""
    idx = np.flatnonzero(usable)
    order = idx[np.argsort(labels[idx], kind="stable")]
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    ends = np.r_[starts[1:], len(order)]
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    for s, e in zip(starts, ends, strict=True):
        if e - s < 2:
            continue
        members = np.sort(order[s:e])
        i, j = np.triu_indices(len(members), k=1)
        firsts.append(members[i])
        seconds.append(members[j])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)


def impostor_pair_count(labels: np.ndarray, usable: np.ndarray) -> int:
    """How many unordered different-identity pairs the usable images form."""
    kept = labels[usable]
    n = len(kept)
    _, counts = np.unique(kept, return_counts=True)
    same = int((counts * (counts - 1) // 2).sum())
    return n * (n - 1) // 2 - same


# --------------------------------------------------------------------------------------------
# Embedding a set once, with a resumable cache


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # (N, D) float32; zeros where not acquired
    acquired: np.ndarray  # (N,) bool

    @property
    def fta_count(self) -> int:
        return int((~self.acquired).sum())


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def embed_images(
    dataset: Dataset,
    embed_fn: EmbedFn,
    cache: Path | None = None,
    *,
    dim: int = 128,
    checkpoint_every: int = 250,
    progress: Callable[[int, int, float], None] | None = None,
    read_image: Callable[[Path], np.ndarray] | None = None,
) -> Embeddings:
    """Run ``embed_fn`` on every image of ``dataset`` (RGB uint8), once.

    The cache holds the whole set's rows with a ``done`` mask, so a ``--limit`` run fills the first
    rows and a later full run only does the rest; an interrupted run resumes. The names are stored
    and checked, so a cache never feeds embeddings to the wrong images.
    """
    reader = read_image if read_image is not None else read_rgb
    n = len(dataset)
    vectors = np.zeros((n, dim), np.float32)
    acquired = np.zeros(n, bool)
    done = np.zeros(n, bool)
    cached_names: np.ndarray | None = None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            cached_names = data["names"]
            rows = min(len(cached_names), n)
            if tuple(cached_names[:rows].tolist()) == dataset.names[:rows]:
                vectors[:rows] = data["vectors"][:rows]
                acquired[:rows] = data["acquired"][:rows]
                done[:rows] = data["done"][:rows]
            if len(cached_names) > n:
                # Keep rows beyond this subset: a subset run must not throw away a full run's work.
                extra = {k: data[k][n:] for k in ("vectors", "acquired", "done")}
            else:
                extra = None
    else:
        extra = None

    def save() -> None:
        if cache is None:
            return
        names = np.asarray(dataset.names)
        vec, acq, dn = vectors, acquired, done
        if extra is not None and cached_names is not None:
            names = cached_names
            vec = np.concatenate([vectors, extra["vectors"]])
            acq = np.concatenate([acquired, extra["acquired"]])
            dn = np.concatenate([done, extra["done"]])
        save_npz_atomic(cache, names=names, vectors=vec, acquired=acq, done=dn)

    todo = np.flatnonzero(~done)
    started = time.perf_counter()
    for count, i in enumerate(todo, start=1):
        result = embed_fn(reader(dataset.paths[i]))
        if result is not None:
            vectors[i] = np.asarray(result, np.float32).reshape(-1)
            acquired[i] = True
        done[i] = True
        if count % checkpoint_every == 0:
            save()
            if progress is not None:
                progress(count, len(todo), time.perf_counter() - started)
    if len(todo):
        save()
        if progress is not None:
            progress(len(todo), len(todo), time.perf_counter() - started)
    return Embeddings(vectors, acquired)


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------------------------
# Scores


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


# --------------------------------------------------------------------------------------------
# Operating points, EER, DET


@dataclass(frozen=True)
class OperatingPoint:
    target_fmr: float
    threshold: float  # on the similarity() scale; match when score >= threshold
    n_impostor: int
    false_matches: int
    fmr: float
    n_genuine: int
    false_non_matches: int  # FTAs included
    fnmr: float
    genuine_fta: int
    fnmr_acquired: float  # over genuine pairs with both faces acquired
    fnmr_person_balanced: float  # each person's FNMR weighted equally (nan if identities unknown)
    resolved: bool  # target * n_impostor >= 1: the data can show an FMR this low at all

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round_up(value: float, decimals: int) -> float:
    scale = 10**decimals
    return math.ceil(value * scale) / scale


def threshold_at_fmr(scores: Scores, target: float, decimals: int = THRESHOLD_DECIMALS) -> float:
    """The lowest threshold (rounded up to ``decimals``) whose FMR on these scores is <= target."""
    if scores.n_impostor == 0:
        raise ValueError("no impostor scores")
    allowed = math.floor(target * scores.n_impostor + 1e-9)
    if allowed >= len(scores.impostor_top):
        if not scores.complete:
            raise ValueError(f"FMR {target:g} lies below the kept impostor tail; keep more scores")
        # every impostor may match: the threshold only has to admit them all
        return _round_down(float(scores.impostor_top[-1]), decimals)
    # The (allowed+1)-th highest impostor score must fall below the threshold.
    barrier = float(scores.impostor_top[allowed])
    threshold = _round_up(float(np.nextafter(barrier, math.inf)), decimals)
    while threshold <= barrier:  # float rounding at a decimal boundary
        threshold = round(threshold + 10**-decimals, decimals)
    return threshold


def _round_down(value: float, decimals: int) -> float:
    scale = 10**decimals
    return math.floor(value * scale) / scale


def operating_point_at(scores: Scores, threshold: float, target: float = math.nan) -> OperatingPoint:
    """FMR and FNMR at a given threshold (e.g. one calibrated elsewhere)."""
    fm = int(scores.false_matches(threshold))
    fnm = int(scores.false_non_matches(threshold))
    acquired_gen = scores.n_genuine - scores.genuine_fta
    fnm_acquired = fnm - scores.genuine_fta
    return OperatingPoint(
        target_fmr=target,
        threshold=float(threshold),
        n_impostor=scores.n_impostor,
        false_matches=fm,
        fmr=fm / scores.n_impostor if scores.n_impostor else math.nan,
        n_genuine=scores.n_genuine,
        false_non_matches=fnm,
        fnmr=fnm / scores.n_genuine if scores.n_genuine else math.nan,
        genuine_fta=scores.genuine_fta,
        fnmr_acquired=fnm_acquired / acquired_gen if acquired_gen else math.nan,
        fnmr_person_balanced=scores.person_balanced_fnmr(threshold),
        resolved=bool(math.isnan(target) or target * scores.n_impostor >= 1),
    )


def operating_point(scores: Scores, target: float) -> OperatingPoint:
    return operating_point_at(scores, threshold_at_fmr(scores, target), target)


@dataclass(frozen=True)
class Eer:
    eer: float
    threshold: float


def equal_error_rate(scores: Scores) -> Eer:
    """Where FMR(t) and FNMR(t) cross, linearly interpolated between neighbouring thresholds.

    Candidate thresholds are every distinct score; FMR falls and FNMR rises with t, so the first
    candidate where FMR <= FNMR brackets the crossing with the one before it.
    """
    finite_gen = scores.genuine[np.isfinite(scores.genuine)]
    candidates = np.unique(np.concatenate([finite_gen, scores.impostor_top]))
    if not scores.complete:
        candidates = candidates[candidates > scores.lowest_exact]
    if not len(candidates):
        raise ValueError("no scores")
    fmr = np.asarray(scores.false_matches(candidates), float) / max(scores.n_impostor, 1)
    fnmr = np.asarray(scores.false_non_matches(candidates), float) / max(scores.n_genuine, 1)
    diff = fmr - fnmr
    cross = np.flatnonzero(diff <= 0)
    if not len(cross):
        raise ValueError("FMR stays above FNMR over the thresholds kept")
    i = int(cross[0])
    if i == 0:
        if not scores.complete:
            raise ValueError("the EER lies below the kept impostor tail; keep more scores")
        return Eer(float((fmr[0] + fnmr[0]) / 2), float(candidates[0]))
    d0, d1 = diff[i - 1], diff[i]
    alpha = d0 / (d0 - d1) if d0 != d1 else 1.0
    eer = fmr[i - 1] + alpha * (fmr[i] - fmr[i - 1])
    threshold = candidates[i - 1] + alpha * (candidates[i] - candidates[i - 1])
    return Eer(float(eer), float(threshold))


def det_points(scores: Scores, max_points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """(FMR, FNMR) along the DET curve, at most ``max_points`` points spread evenly in log FMR."""
    finite_gen = scores.genuine[np.isfinite(scores.genuine)]
    candidates = np.unique(np.concatenate([finite_gen, scores.impostor_top]))
    if not scores.complete:
        candidates = candidates[candidates > scores.lowest_exact]
    fmr = np.asarray(scores.false_matches(candidates), float) / max(scores.n_impostor, 1)
    fnmr = np.asarray(scores.false_non_matches(candidates), float) / max(scores.n_genuine, 1)
    ok = (fmr > 0) & (fnmr > 0)
    fmr, fnmr = fmr[ok], fnmr[ok]
    if len(fmr) > max_points:
        # Along the curve -log FMR rises and log FNMR rises: sample evenly in both so that neither
        # the flat nor the steep parts lose their shape.
        picks = [np.array([0, len(fmr) - 1])]
        for axis in (-np.log10(fmr), np.log10(fnmr)):
            grid = np.linspace(axis[0], axis[-1], max_points // 2)
            picks.append(np.searchsorted(axis, grid).clip(0, len(fmr) - 1))
        pick = np.unique(np.concatenate(picks))
        fmr, fnmr = fmr[pick], fnmr[pick]
    return fmr, fnmr


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


# --------------------------------------------------------------------------------------------
# Summaries


@dataclass(frozen=True)
class Evaluation:
    """One pipeline on one set: all-pairs operating points, EER, FTA, and the official pair list."""

    name: str
    settings: Mapping[str, Any]
    images: int
    fta_images: int
    operating_points: tuple[OperatingPoint, ...]
    eer: Eer
    n_genuine: int
    n_impostor: int
    genuine_fta: int
    impostor_fta: int
    official: Mapping[str, Any] = field(default_factory=dict)

    def point(self, target: float) -> OperatingPoint:
        for p in self.operating_points:
            if math.isclose(p.target_fmr, target):
                return p
        raise KeyError(target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "settings": dict(self.settings),
            "images": self.images,
            "fta_images": self.fta_images,
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
            "genuine_fta_pairs": self.genuine_fta,
            "impostor_fta_pairs": self.impostor_fta,
            "eer": round(self.eer.eer, 6),
            "eer_threshold": round(self.eer.threshold, THRESHOLD_DECIMALS),
            "operating_points": {fmr_key(p.target_fmr): _rounded(p.to_dict()) for p in self.operating_points},
            "official_pairs": dict(self.official),
        }


def fmr_key(target: float) -> str:
    return f"fmr_{target:.0e}".replace("e-0", "e-")


def _rounded(d: Mapping[str, Any]) -> dict[str, Any]:
    """Floats to 8 decimals, NaN to null (JSON has no NaN)."""
    return {k: (None if math.isnan(v) else round(v, 8)) if isinstance(v, float) else v for k, v in d.items()}


def evaluate(
    name: str,
    dataset: Dataset,
    embeddings: Embeddings,
    *,
    settings: Mapping[str, Any] | None = None,
    targets: Sequence[float] = TARGET_FMRS,
    pairs: PairList | None = None,
) -> tuple[Evaluation, Scores]:
    """All-pairs operating points for one pipeline, and the official list scored at those thresholds."""
    scores = score_all_pairs(embeddings, dataset.labels, dataset.usable)
    points = tuple(operating_point(scores, t) for t in targets)
    official: dict[str, Any] = {}
    if pairs is not None:
        listed = score_pair_list(embeddings, pairs, dataset.labels)
        official = {
            "pairs": len(pairs.a),
            "genuine": listed.n_genuine,
            "impostor": listed.n_impostor + listed.impostor_fta,
            "touching_label_errors": pairs.touching_errata,
            "genuine_fta_pairs": listed.genuine_fta,
            "impostor_fta_pairs": listed.impostor_fta,
            "eer": round(equal_error_rate(listed).eer, 6) if listed.n_impostor and listed.n_genuine else None,
            # at the thresholds calibrated on all pairs, the figure a kiosk would see
            "at_all_pairs_thresholds": {
                fmr_key(p.target_fmr): _rounded(
                    operating_point_at(listed, p.threshold, p.target_fmr).to_dict()
                    | {"resolved": p.target_fmr * listed.n_impostor >= 1}
                )
                for p in points
            },
            # the list's own thresholds: resolved only where target * pairs >= 1
            "own_thresholds": {fmr_key(t): _rounded(operating_point(listed, t).to_dict()) for t in targets},
            "accuracy_at_eer_threshold": _accuracy(listed, equal_error_rate(listed).threshold)
            if listed.n_impostor and listed.n_genuine
            else None,
        }
    result = Evaluation(
        name=name,
        settings=dict(settings or {}),
        images=len(dataset),
        fta_images=int((~embeddings.acquired).sum()),
        operating_points=points,
        eer=equal_error_rate(scores),
        n_genuine=scores.n_genuine,
        n_impostor=scores.n_impostor,
        genuine_fta=scores.genuine_fta,
        impostor_fta=scores.impostor_fta,
        official=official,
    )
    return result, scores


def _accuracy(scores: Scores, threshold: float) -> float:
    correct = (scores.n_genuine - int(scores.false_non_matches(threshold))) + (
        scores.n_impostor + scores.impostor_fta - int(scores.false_matches(threshold))
    )
    return round(correct / (scores.n_genuine + scores.n_impostor + scores.impostor_fta), 6)


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


# --------------------------------------------------------------------------------------------
# Calibration files (models/calibration/*.json) and what the manifest gets from them

CALIBRATION_SCHEMA = "gerbang.face-calibration"
CALIBRATION_SCHEMA_VERSION = 1
SCORE_DEFINITION = {
    "function": "models.evaluation.similarity",
    "name": SCORE_NAME,
    "definition": "1 - (euclidean distance between the two 128-D descriptors) / 2; raw descriptors",
    "higher_is_more_similar": True,
    "decision": "match when score >= threshold",
    "dlib_equivalent": "dlib's 'distance < 0.6' is score > 0.7",
}
_REQUIRED_TOP = ("schema", "schema_version", "model", "date", "dataset", "score", "pipeline", "variants")
_REQUIRED_VARIANT = ("precision", "flip", "model_file", "model_sha256", "operating_points", "eer")
_REQUIRED_POINT = (
    "threshold",
    "fmr",
    "fnmr",
    "n_impostor",
    "n_genuine",
    "false_matches",
    "false_non_matches",
)


def variant_key(precision: str, flip: bool) -> str:
    return f"{precision}_flip" if flip else precision


def build_calibration(
    model: str,
    dataset: Dataset,
    pipeline: Mapping[str, Any],
    variants: Mapping[str, tuple[Evaluation, Mapping[str, Any]]],
    *,
    default_variant: str,
    int8_verdict: Mapping[str, Any] | None = None,
    date: dt.date | None = None,
) -> dict[str, Any]:
    """The calibration document: one entry per (precision, flip) variant of ``model``.

    ``variants`` maps a key from :func:`variant_key` to (evaluation, {"precision", "flip",
    "model_file", "model_sha256"}).
    """
    body: dict[str, Any] = {}
    for key, (evaluation, info) in variants.items():
        entry = dict(info)
        entry.update(
            {
                "eer": round(evaluation.eer.eer, 6),
                "eer_threshold": round(evaluation.eer.threshold, THRESHOLD_DECIMALS),
                "fta_images": evaluation.fta_images,
                "genuine_fta_pairs": evaluation.genuine_fta,
                "impostor_fta_pairs": evaluation.impostor_fta,
                "operating_points": {
                    fmr_key(p.target_fmr): _rounded(p.to_dict()) for p in evaluation.operating_points
                },
                "official_pairs": dict(evaluation.official),
            }
        )
        body[key] = entry
    doc = {
        "schema": CALIBRATION_SCHEMA,
        "schema_version": CALIBRATION_SCHEMA_VERSION,
        "model": model,
        "date": (date or dt.date.today()).isoformat(),
        "dataset": dataset.describe()
        | {
            "pairs": "all same-person and all different-person pairs of the usable images",
            "fta_rule": (
                "FTA = false non-match for genuine pairs; impostor pairs with an FTA are not compared"
            ),
        },
        "score": dict(SCORE_DEFINITION),
        "pipeline": dict(pipeline),
        "variants": body,
        "default_variant": default_variant,
    }
    if int8_verdict is not None:
        doc["int8_verdict"] = dict(int8_verdict)
    validate_calibration(doc)
    return doc


def validate_calibration(doc: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``doc`` is a calibration document this code can use."""
    missing = [k for k in _REQUIRED_TOP if k not in doc]
    if missing:
        raise ValueError(f"calibration lacks {missing}")
    if doc["schema"] != CALIBRATION_SCHEMA or doc["schema_version"] != CALIBRATION_SCHEMA_VERSION:
        raise ValueError(f"unsupported calibration schema {doc['schema']!r} v{doc['schema_version']!r}")
    if doc["score"].get("name") != SCORE_NAME:
        raise ValueError(f"calibration is on another score scale: {doc['score'].get('name')!r}")
    if not doc["variants"]:
        raise ValueError("calibration has no variants")
    for key, variant in doc["variants"].items():
        lacking = [k for k in _REQUIRED_VARIANT if k not in variant]
        if lacking:
            raise ValueError(f"variant {key} lacks {lacking}")
        if variant_key(variant["precision"], bool(variant["flip"])) != key:
            raise ValueError(f"variant {key} is filed under the wrong key")
        for point_key, point in variant["operating_points"].items():
            lacking = [k for k in _REQUIRED_POINT if k not in point]
            if lacking:
                raise ValueError(f"{key}/{point_key} lacks {lacking}")
            if not isinstance(point["threshold"], (int, float)) or not math.isfinite(point["threshold"]):
                raise ValueError(f"{key}/{point_key} threshold is not a finite number")
    if doc.get("default_variant") not in doc["variants"]:
        raise ValueError(f"default variant {doc.get('default_variant')!r} is not calibrated")


def dump_calibration(doc: Mapping[str, Any]) -> str:
    """Sorted keys, 2-space indent, trailing newline: the same calibration gives the same bytes."""
    validate_calibration(doc)
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_calibration(doc: Mapping[str, Any], path: Path) -> Path:
    text = dump_calibration(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_calibration(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    validate_calibration(doc)
    return doc


INT8_SUFFIX = "_int8"


def operating_points_for(
    model_name: str, *, flip: bool | None = None, calibration_dir: Path | None = None
) -> dict[str, Any]:
    """What ``models/build.py`` puts in a model manifest's ``operating_points``; {} if uncalibrated.

    ``model_name`` is a manifest name: ``dlib_resnet_v1`` (fp32) or ``dlib_resnet_v1_int8``. ``flip``
    picks the flip-augmented or the plain calibration; None takes the file's default variant's
    setting. Top-level keys say what the thresholds hold for (``score`` function, ``flip``,
    ``calibrated_model_sha256``: the matcher refuses a mismatch); one entry per target FMR
    (``fmr_1e-2``, ``fmr_1e-3``, ``fmr_1e-4``) carries the ``threshold`` on the :func:`similarity`
    scale and the rates measured at it.
    """
    directory = calibration_dir if calibration_dir is not None else CALIBRATION_DIR
    if model_name.endswith(INT8_SUFFIX):
        family, precision = model_name[: -len(INT8_SUFFIX)], "int8"
    else:
        family, precision = model_name, "fp32"
    for path in sorted(directory.glob("*.json")):
        doc = read_calibration(path)
        if doc["model"] != family:
            continue
        use_flip = bool(doc["variants"][doc["default_variant"]]["flip"] if flip is None else flip)
        variant = doc["variants"].get(variant_key(precision, use_flip))
        if variant is None:
            return {}
        points: dict[str, Any] = {
            "score": doc["score"]["function"],
            "score_definition": doc["score"]["name"],
            "decision": doc["score"]["decision"],
            "flip": use_flip,
            "calibrated_model_sha256": variant["model_sha256"],
            "calibration_file": f"models/calibration/{path.name}",
            "dataset": doc["dataset"]["id"],
            "date": doc["date"],
            "eer": variant["eer"],
        }
        for key, p in variant["operating_points"].items():
            points[key] = {
                "threshold": p["threshold"],
                "fmr": p["fmr"],
                "fnmr": p["fnmr"],
                "n_impostor": p["n_impostor"],
                "n_genuine": p["n_genuine"],
            }
        return points
    return {}
