"""The labelled dev set: LFW DevTrain read in place, its known label errors, its pairs.

Offline evaluation only: nothing here runs on a kiosk.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


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
