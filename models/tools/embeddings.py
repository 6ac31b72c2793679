"""Embedding every image of a set once through any ``embed_fn(rgb) -> descriptor | None``, with a
resumable cache (None = failure to acquire)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.tools.lfw import Dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO_ROOT / "var" / "eval"
EmbedFn = Callable[[np.ndarray], "np.ndarray | None"]


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
