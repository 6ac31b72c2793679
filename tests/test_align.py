"""The OpenCV face chip against dlib's get_face_chip, in pixels and in descriptor space."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from models import align, manifest, model_files, runtime
from models.shape_predictor import ShapePredictor
from models.tools import build
from tests.test_models_convert import built_models, dlib_faces, dlib_module, face_images, session


@functools.cache
def resnet():
    return session(built_models(), "dlib_resnet_v1")


def landmarks(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=float)


def dlib_chip(image: np.ndarray, shape) -> np.ndarray:
    return dlib_module().get_face_chip(image, shape, size=150, padding=0.25)


def drift(ours: np.ndarray, theirs: np.ndarray) -> float:
    both = runtime.embed(resnet(), np.stack([ours, theirs]))
    return float(np.linalg.norm(both[0] - both[1]))


@pytest.mark.needs_lfw
def test_chip_matches_dlibs_chip_and_descriptor_drift_is_negligible():
    drifts = []
    for index in range(len(face_images())):
        image, faces = dlib_faces(index)
        for _box, shape in faces:
            ours = align.extract_chip(image, landmarks(shape))
            theirs = dlib_chip(image, shape)
            assert ours.shape == theirs.shape == (150, 150, 3) and ours.dtype == np.uint8
            diff = np.abs(ours.astype(int) - theirs.astype(int))
            assert diff.max() <= 2 and diff.mean() < 0.05, face_images()[index][0]
            drifts.append(drift(ours, theirs))
    assert len(drifts) >= 6
    # dlib's own same-person threshold is 0.6; measured drift is below 0.001.
    assert max(drifts) < 0.01


@pytest.mark.needs_lfw
def test_large_face_takes_dlibs_pyramid_path_and_still_matches():
    image, faces = dlib_faces(1)
    big = cv2.resize(image, (image.shape[1] * 3, image.shape[0] * 3), interpolation=cv2.INTER_CUBIC)
    shape = dlib_module().full_object_detection(
        dlib_module().rectangle(*(3 * v for v in faces[0][0])),
        [dlib_module().point(int(3 * p.x + 1), int(3 * p.y + 1)) for p in faces[0][1].parts()],
    )
    points = landmarks(shape)
    assert align.pyramid_levels_needed(align.chip_geometry(points)) >= 1
    ours = align.extract_chip(big, points)
    theirs = dlib_chip(big, shape)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 0.1
    assert drift(ours, theirs) < 0.01


@pytest.mark.needs_lfw
def test_chip_from_our_own_landmarks_gives_dlibs_descriptor():
    """The whole numpy/ONNX path (our landmarks, our chip, our ResNet) against dlib end to end."""
    data, _ = manifest.load_verified(model_files.model_path(built_models(), "dlib_landmarks_5"))
    predictor = ShapePredictor.load(data)
    recogniser = dlib_module().face_recognition_model_v1(
        str(build.find_source_package().path(manifest.KNOWN_SOURCES["dlib_resnet_v1"]["file"]))
    )
    for index in range(3):
        image, faces = dlib_faces(index)
        for box, shape in faces:
            chip = align.extract_chip(image, predictor.predict_rounded(image, box))
            ours = runtime.embed(resnet(), chip)[0]
            theirs = np.asarray(recogniser.compute_face_descriptor(image, shape))
            assert np.linalg.norm(ours - theirs) < 0.02


def test_geometry_places_the_template_on_the_landmarks():
    _image, faces = dlib_faces(0)
    points = landmarks(faces[0][1])
    geometry = align.chip_geometry(points)
    left, top, right, bottom = geometry.box
    assert right - left == pytest.approx(bottom - top)
    corners = geometry.corner_points()
    # chip pixel (x, y) -> image: corner[0] + x * (tr - tl) / 149 + y * (bl - tl) / 149
    template = (align.PADDING + align.TEMPLATE_5) / (2 * align.PADDING + 1) * align.CHIP_SIZE
    mapped = (
        corners[0]
        + template[:, :1] * (corners[1] - corners[0]) / 149
        + template[:, 1:] * (corners[2] - corners[0]) / 149
    )
    assert np.abs(mapped - points).mean() < 3  # a least-squares fit of 5 points, not an exact one


def test_flip_mirrors_and_rejects_wrong_landmark_counts():
    chip = np.arange(150 * 150 * 3, dtype=np.uint8).reshape(150, 150, 3)
    np.testing.assert_array_equal(align.flip(chip)[:, 0], chip[:, -1])
    with pytest.raises(ValueError):
        align.chip_geometry(np.zeros((68, 2)))
