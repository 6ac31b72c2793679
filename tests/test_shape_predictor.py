"""The numpy 5-point landmark predictor against dlib's own shape_predictor on real faces."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from models import manifest, model_files, shape_predictor
from models.tools import landmarks_dat
from models.tools.dlib_format import DlibFormatError
from tests.test_models_convert import (
    built_models,
    dlib_faces,
    dlib_models,
    dlib_module,
    face_images,
    source_file,
)


@functools.cache
def predictor() -> shape_predictor.ShapePredictor:
    data, _ = manifest.load_verified(model_files.model_path(built_models(), "dlib_landmarks_5"))
    return shape_predictor.ShapePredictor.load(data)


def dlib_points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=float)


def test_extracted_cascade_has_the_documented_structure():
    model = predictor().model
    assert model.describe() == {
        "stages": 15,
        "trees_per_stage": 500,
        "tree_depth": 4,
        "feature_pixels": 800,
        "landmarks": 5,
    }
    assert model.leaves.shape == (15, 500, 16, 5, 2)
    assert model.split_idx1.max() < 800 and model.anchor_idx.max() < 5


def test_npz_is_deterministic_and_round_trips():
    path = model_files.model_path(built_models(), "dlib_landmarks_5")
    model = shape_predictor.load_npz(path)
    assert landmarks_dat.to_npz_bytes(model) == path.read_bytes()
    assert path.stat().st_size < 6_000_000  # compact: the 9 MB .dat in about 5.4 MB
    header = source_file("dlib_landmarks_5").read_bytes()[:80]
    assert header[:2] == b"\x01\x01"  # dlib's shape_predictor version 1


def test_a_corrupt_landmark_file_is_refused():
    data = source_file("dlib_landmarks_5").read_bytes()
    with pytest.raises(DlibFormatError):
        landmarks_dat.read_dat(data[:100_000])
    with pytest.raises(DlibFormatError):
        landmarks_dat.read_dat(b"\x01\x02" + data[2:])


@pytest.mark.needs_lfw
def test_landmarks_agree_with_dlib_on_several_real_faces():
    float_errors, rounded_errors = [], []
    for index in range(len(face_images())):
        image, faces = dlib_faces(index)
        for box, shape in faces:
            reference = dlib_points(shape)
            ours = predictor().predict(image, box)
            rounded = predictor().predict_rounded(image, box)
            per_face = np.linalg.norm(rounded - reference, axis=1).mean()
            assert per_face <= 0.5, (face_images()[index][0], rounded, reference)
            rounded_errors.append(per_face)
            float_errors.append(np.linalg.norm(ours - reference, axis=1).mean())
    assert len(rounded_errors) >= 6
    # dlib reports whole pixels, so even a perfect float prediction is ~0.38 px away on average.
    assert np.mean(float_errors) <= 0.5
    assert np.mean(rounded_errors) <= 0.1


def test_greyscale_input_gives_the_same_landmarks_as_rgb():
    image, faces = dlib_faces(0)
    box = faces[0][0]
    grey = shape_predictor.to_gray(image)
    np.testing.assert_array_equal(predictor().predict(grey, box), predictor().predict(image, box))
    reference = dlib_points(dlib_models()[1](grey, dlib_module().rectangle(*box)))
    assert np.linalg.norm(predictor().predict_rounded(grey, box) - reference, axis=1).mean() <= 0.5


@pytest.mark.needs_lfw
def test_a_box_hanging_off_the_image_matches_dlib():
    dlib = dlib_module()
    image, faces = dlib_faces(1)
    left, top, right, bottom = faces[0][0]
    shifted = (left - 60, top - 50, right - 60, bottom - 50)  # feature pixels outside read as 0
    reference = dlib_points(dlib_models()[1](image, dlib.rectangle(*shifted)))
    assert np.linalg.norm(predictor().predict_rounded(image, shifted) - reference, axis=1).mean() <= 0.5


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(5, 2))
    angle, scale = 0.4, 1.7
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(shape_predictor.similarity_matrix(src, src @ rot.T + (3, -2)), rot, atol=1e-12)


def test_rejects_a_non_image():
    with pytest.raises(ValueError):
        shape_predictor.to_gray(np.zeros((4, 4, 4), np.uint8))
