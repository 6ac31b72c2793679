"""dlib's 5-point landmark model: read from dlib's ``shape_predictor`` serialization and written as
the compact, deterministic ``.npz`` that :mod:`models.shape_predictor` runs at the kiosk."""

from __future__ import annotations

import io
import zipfile

import numpy as np

from models.shape_predictor import NPZ_ARRAYS, ShapeModel
from models.tools.dlib_format import DlibFormatError, Reader

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same model gives the same bytes


def read_dat(data: bytes) -> ShapeModel:
    """Parse dlib's ``shape_predictor`` serialization."""
    r = Reader(data)
    if r.read_int() != 1:
        raise DlibFormatError("not a dlib shape_predictor file (version)")
    initial = r.read_matrix().reshape(-1)
    parts = initial.size // 2
    n_stages = r.read_int()
    idx1: list[list[list[int]]] = []
    idx2: list[list[list[int]]] = []
    thresh: list[list[list[float]]] = []
    leaves: list[list[np.ndarray]] = []
    for _ in range(n_stages):
        s_idx1, s_idx2, s_thresh, s_leaves = [], [], [], []
        for _ in range(r.read_int()):
            t_idx1, t_idx2, t_thresh = [], [], []
            for _ in range(r.read_int()):
                t_idx1.append(r.read_int())
                t_idx2.append(r.read_int())
                t_thresh.append(r.read_float())
            n_leaves = r.read_int()
            if n_leaves != len(t_idx1) + 1:
                raise DlibFormatError("a tree's leaves do not match its splits")
            s_leaves.append(np.stack([r.read_matrix().reshape(-1) for _ in range(n_leaves)]))
            s_idx1.append(t_idx1)
            s_idx2.append(t_idx2)
            s_thresh.append(t_thresh)
        idx1.append(s_idx1)
        idx2.append(s_idx2)
        thresh.append(s_thresh)
        leaves.append(s_leaves)
    anchors = r.read_sequence(lambda: r.read_sequence(r.read_int))
    deltas = r.read_sequence(lambda: r.read_sequence(lambda: (r.read_float(), r.read_float())))
    if r.remaining:
        raise DlibFormatError(f"{r.remaining} unread bytes after the shape predictor")
    if len(anchors) != n_stages or len(deltas) != n_stages:
        raise DlibFormatError("feature-pixel tables do not match the number of stages")
    leaf_values = np.asarray(leaves, dtype=np.float32)
    model = ShapeModel(
        initial_shape=initial.reshape(parts, 2).astype(np.float32),
        anchor_idx=np.asarray(anchors, dtype=np.int16),
        deltas=np.asarray(deltas, dtype=np.float32),
        split_idx1=np.asarray(idx1, dtype=np.int16),
        split_idx2=np.asarray(idx2, dtype=np.int16),
        split_thresh=np.asarray(thresh, dtype=np.float32),
        leaves=leaf_values.reshape(*leaf_values.shape[:3], parts, 2),
    )
    n_features = model.deltas.shape[1]
    if max(max(map(max, stage)) for stage in idx1 + idx2) >= n_features or model.anchor_idx.max() >= parts:
        raise DlibFormatError("a split or anchor refers past the feature pixels or landmarks")
    return model


def to_npz_bytes(model: ShapeModel) -> bytes:
    """A deterministic .npz (np.savez stamps members with the current time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in NPZ_ARRAYS:
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(getattr(model, name)), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=6)
    return buffer.getvalue()
