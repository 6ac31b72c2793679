"""The reference pipelines the harness measures: subject choice, the chip cache, dlib's chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import scoring
from models.tools import accuracy, chains, embeddings, latency, lfw
from tests.lfw import lfw_dir
from tests.test_models_convert import built_models


def test_subject_is_the_central_one_of_the_big_faces():
    shape = (250, 250, 3)
    central_small = (100, 100, 150, 150)  # 51 px, centred
    big_corner = (0, 0, 100, 100)  # 101 px, in the corner
    central_big = (75, 70, 165, 160)  # 91 px, near the centre
    assert chains.select_subject([big_corner, central_big], shape) == 1
    assert chains.select_subject([big_corner, central_small], shape) == 0  # too small to count
    assert chains.select_subject([], shape) is None


def test_frame_padding_places_the_face():
    face = np.full((250, 250, 3), 7, np.uint8)
    frame = latency.pad_into_frame(face)
    assert frame.shape == (480, 640, 3)
    assert (frame == 7).all(axis=2).sum() == 250 * 250
    assert (frame[115:365, 195:445] == 7).all()


@pytest.mark.needs_lfw
def test_embed_fn_and_cached_chip_paths_agree(tmp_path: Path):
    full = lfw.load_lfw(lfw_dir().parent)
    chain = chains.OnnxChain.load(built_models())
    count = 6
    chips, acquired, _ = accuracy.onnx_chips(full, count, chain, tmp_path)
    assert acquired.all()
    emb = accuracy.embed_chip_set(chips, acquired, chain.embed_chips, tmp_path / "emb.npz", len(full))
    direct = embeddings.embed_images(full.subset(count), chain)
    assert np.abs(emb.vectors - direct.vectors).max() < 1e-4
    # the cache is reused: a second call makes no new chips
    _, _, seconds = accuracy.onnx_chips(full, count, chain, tmp_path)
    assert seconds == 0.0
    # flip changes the descriptor a little, not the identity
    plain = chain.with_resnet(chain, flip=False).embed_chips(np.asarray(chips))
    assert 0 < np.linalg.norm(plain - emb.vectors, axis=1).max() < 0.2


@pytest.mark.needs_lfw
def test_dlib_chain_agrees_with_ours_on_a_clean_face():
    full = lfw.load_lfw(lfw_dir().parent)
    rgb = embeddings.read_rgb(full.paths[0])
    theirs = chains.DlibChain()(rgb)
    ours = chains.OnnxChain.load(built_models(), flip=False)(rgb)
    assert theirs is not None and ours is not None
    # different detectors give slightly different boxes, hence landmarks and chips
    assert scoring.similarity(theirs, ours) > 0.9
