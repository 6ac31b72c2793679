"""The ONNX face pipeline and matcher on real faces (LFW, read in place from ../shared).

The helpers at the top (one loaded matcher, LFW photos, frames composed from them) are shared with
the other face-pipeline test modules.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.interfaces import Frame
from models import manifest, model_files
from models.matching import FaceObservation, Guidance, ModelUnavailable, ReferencePortrait
from models.onnx_matcher import NO_EVIDENCE_SCORE, OnnxFaceMatcher, decision_threshold
from models.pipeline import BurstSelector, LiveFace, PipelineSettings, fuse_embeddings
from models.portraits import PortraitCache, PortraitDescriptor
from models.pyramid import Rect
from models.scoring import similarity
from models.subject import choose_subject
from tests.lfw import lfw_dir
from tests.test_models_convert import ROOT, built_models, read_rgb

# Two photos each of two people, and a third person; all found by the detector at LFW's framing.
GENUINE = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg")
OTHER = ("Aaron_Sorkin/Aaron_Sorkin_0001.jpg", "Aaron_Sorkin/Aaron_Sorkin_0002.jpg")
THIRD = "Marsha_Thomason/Marsha_Thomason_0001.jpg"


@functools.cache
def matcher() -> OnnxFaceMatcher:
    return OnnxFaceMatcher(built_models(), threads=2, settings=PipelineSettings())


@functools.cache
def photo(relpath: str) -> np.ndarray:
    image = read_rgb(lfw_dir() / relpath)
    image.setflags(write=False)
    return image


def frame_of(
    image: np.ndarray, scale: float = 1.92, dx: int = 0, dy: int = 0, shape: tuple[int, int] = (480, 640)
) -> np.ndarray:
    """``image`` scaled and placed on a grey kiosk-camera frame, centred then moved by (dx, dy)."""
    rows, cols = shape
    frame = np.full((rows, cols, 3), 96, np.uint8)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)
    h, w = scaled.shape[:2]
    top, left = (rows - h) // 2 + dy, (cols - w) // 2 + dx
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + h, rows), min(left + w, cols)
    frame[y0:y1, x0:x1] = scaled[y0 - top : y1 - top, x0 - left : x1 - left]
    return frame


def observe(image: np.ndarray) -> FaceObservation:
    return matcher().observe(Frame(image=image, timestamp=0.0, sequence=1))


def portrait(relpath: str) -> ReferencePortrait:
    return ReferencePortrait(image=photo(relpath), source="test")


# --------------------------------------------------------------------------------------------
# Matching


@pytest.mark.needs_lfw
def test_genuine_pair_matches_and_impostor_does_not():
    live = observe(frame_of(photo(GENUINE[1])))
    assert live.acquired and live.face_present and live.guidance == ()
    genuine = matcher().compare(live, portrait(GENUINE[0]))
    impostor = matcher().compare(live, portrait(OTHER[0]))
    assert genuine.matched and not impostor.matched
    assert genuine.score > genuine.threshold > impostor.score
    assert genuine.threshold == matcher().threshold


@pytest.mark.needs_lfw
def test_still_descriptors_are_deterministic_and_score_like_the_evaluation():
    first, reason = matcher().embed_image(photo(GENUINE[0]))
    again, _ = matcher().embed_image(photo(GENUINE[0]))
    assert reason == "ok" and first is not None and first.shape == (128,)
    np.testing.assert_array_equal(first, again)
    other, _ = matcher().embed_image(photo(GENUINE[1]))
    # One score function for the kiosk, the CLI and the calibration: higher = more similar.
    assert similarity(first, first) == pytest.approx(1.0)
    assert similarity(first, other) > similarity(first, matcher().embed_image(photo(THIRD))[0])


@pytest.mark.needs_lfw
def test_flip_augmentation_is_a_switch_and_averages_chip_and_mirror():
    flipping = matcher()
    analysis = flipping.pipeline.analyse(photo(GENUINE[0]), flipping.settings.for_stills())
    assert analysis.chip is not None
    single = flipping.pipeline.embed(analysis.chip, flip_augment=False)
    mirrored = flipping.pipeline.embed(analysis.chip[:, ::-1].copy(), flip_augment=False)
    fused = flipping.pipeline.embed(analysis.chip, flip_augment=True)
    np.testing.assert_allclose(fused, (single + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(flipping.embed_image(photo(GENUINE[0]))[0], fused, atol=1e-6)


def test_thresholds_calibrated_with_flip_are_refused_without_it():
    with pytest.raises(ModelUnavailable, match="flip"):
        OnnxFaceMatcher(built_models(), threads=1, settings=PipelineSettings(flip_augment=False))


def test_a_photo_without_a_face_has_no_descriptor():
    grey = np.full((250, 250, 3), 128, np.uint8)
    assert matcher().embed_image(grey) == (None, "no face found")
    observation = observe(frame_of(grey))
    assert not observation.acquired and observation.guidance == (Guidance.NO_FACE,)
    assert not observation.face_present and observation.handle is None


@pytest.mark.needs_lfw
def test_portrait_without_a_face_is_no_evidence_and_check_reference_says_so():
    live = observe(frame_of(photo(GENUINE[1])))
    blank = ReferencePortrait(image=np.full((300, 240, 3), 200, np.uint8), source="test")
    result = matcher().compare(live, blank)
    assert not result.matched and result.score == NO_EVIDENCE_SCORE
    assert matcher().check_reference(blank) == "no face found"
    no_image = ReferencePortrait(image=None, source="x")
    assert matcher().check_reference(no_image) == "the reference has no image"
    assert matcher().check_reference(portrait(GENUINE[0])) is None


@pytest.mark.needs_lfw
def test_greyscale_portraits_are_accepted():
    grey = cv2.cvtColor(photo(GENUINE[0]), cv2.COLOR_RGB2GRAY)
    live = observe(frame_of(photo(GENUINE[1])))
    assert matcher().compare(live, ReferencePortrait(image=grey, source="test")).matched


@pytest.mark.needs_lfw
def test_compare_refuses_an_observation_that_was_not_acquired():
    with pytest.raises(ValueError, match="acquired"):
        matcher().compare(FaceObservation(acquired=False), portrait(GENUINE[0]))


@pytest.mark.needs_lfw
def test_portrait_is_embedded_once_per_transaction_and_forgotten(monkeypatch):
    fresh = OnnxFaceMatcher(built_models(), threads=1, settings=PipelineSettings())
    calls = []
    original = fresh.embed_image
    monkeypatch.setattr(fresh, "embed_image", lambda image: calls.append(1) or original(image))
    live = observe(frame_of(photo(GENUINE[1])))
    reference = portrait(GENUINE[0])
    scores = {fresh.compare(live, reference).score for _ in range(3)}
    assert len(calls) == 1 and len(scores) == 1
    fresh.forget()
    assert len(fresh._portraits) == 0
    fresh.compare(live, reference)
    assert len(calls) == 2


def test_portrait_cache_is_bounded_and_keyed_by_pixels():
    cache = PortraitCache(max_entries=2)
    images = [np.full((4, 4, 3), value, np.uint8) for value in (1, 2, 3)]
    computed = []

    def compute(image: np.ndarray) -> PortraitDescriptor:
        computed.append(int(image[0, 0, 0]))
        return PortraitDescriptor(None, "test")

    for image in (*images, images[2].copy()):
        cache.get(image, compute)
    assert computed == [1, 2, 3] and len(cache) == 2  # the equal copy was a hit, the oldest evicted
    cache.clear()
    assert len(cache) == 0


@pytest.mark.needs_lfw
def test_observation_keeps_the_descriptor_only():
    live = observe(frame_of(photo(GENUINE[1])))
    assert isinstance(live.handle, LiveFace) and live.handle.embedding.shape == (128,)
    assert not any(isinstance(v, np.ndarray) and v.ndim >= 2 for v in vars(live.handle).values())
    assert all(isinstance(v, float) for v in live.quality.values())


@pytest.mark.needs_lfw
def test_matcher_is_thread_safe():
    frames = [frame_of(photo(name)) for name in (*GENUINE, *OTHER)]
    expected = [observe(f).handle.embedding for f in frames]
    results: list[list[np.ndarray]] = [[], []]

    def work(slot: int) -> None:
        for _ in range(2):
            for f in frames:
                results[slot].append(observe(f).handle.embedding)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        for index, embedding in enumerate(got):
            np.testing.assert_array_equal(embedding, expected[index % len(frames)])


# --------------------------------------------------------------------------------------------
# Subject choice and bursts


def test_subject_is_the_largest_face_and_centrality_breaks_near_ties():
    shape = (480, 640)
    big_off_centre = (Rect(0, 0, 199, 199), 1.0)
    small_centre = (Rect(270, 190, 369, 289), 1.0)
    chosen = choose_subject([small_centre, big_off_centre], shape, 0.6)
    assert chosen is not None and chosen.box == big_off_centre[0] and chosen.rivals == 0
    same_size_off = (Rect(0, 190, 99, 289), 1.0)
    chosen = choose_subject([same_size_off, small_centre], shape, 0.6)
    assert chosen is not None and chosen.box == small_centre[0] and chosen.rivals == 1
    assert choose_subject([], shape, 0.6) is None


def _acquired(quality: float, embedding: np.ndarray) -> FaceObservation:
    return FaceObservation(acquired=True, quality={"quality": quality}, handle=LiveFace(embedding))


def test_burst_selector_keeps_the_best_recent_frame_and_can_fuse():
    vectors = [np.full(128, float(i)) for i in range(4)]
    burst = BurstSelector(frames=3)
    assert burst.best() is None
    burst.add(_acquired(0.9, vectors[0]))
    burst.add(FaceObservation(acquired=False, guidance=(Guidance.HOLD_STILL,)))
    burst.add(_acquired(0.5, vectors[1]))
    best = burst.best()
    assert best is not None and best.handle.embedding[0] == 0.0
    burst.add(_acquired(0.7, vectors[2]))  # the 0.9 frame falls out of the last three
    best = burst.best()
    assert best is not None and best.quality["quality"] == 0.7

    fusing = BurstSelector(frames=4, fuse=2)
    for q, v in zip((0.2, 0.8, 0.6, 0.1), vectors, strict=True):
        fusing.add(_acquired(q, v))
    fused = fusing.best()
    assert fused is not None and fused.quality["quality"] == 0.8 and fused.handle.frames == 2
    np.testing.assert_array_equal(fused.handle.embedding, fuse_embeddings([vectors[1], vectors[2]]))
    fusing.clear()
    assert fusing.best() is None
    with pytest.raises(ValueError):
        BurstSelector(frames=2, fuse=3)


@pytest.mark.needs_lfw
def test_burst_fusion_of_real_frames_still_matches():
    burst = BurstSelector(frames=3, fuse=3)
    for scale in (1.6, 1.8, 1.92):
        burst.add(observe(frame_of(photo(GENUINE[1]), scale=scale)))
    fused = burst.best()
    assert fused is not None and fused.handle.frames == 3
    assert matcher().compare(fused, portrait(GENUINE[0])).matched


# --------------------------------------------------------------------------------------------
# Operating point and model loading


def _resnet_manifest() -> manifest.Manifest:
    return matcher().pipeline.manifests["dlib_resnet_v1"]


def test_threshold_falls_back_to_dlibs_distance_until_calibrated(caplog):
    uncalibrated = replace(_resnet_manifest(), operating_points={})
    threshold, source = decision_threshold(uncalibrated, "fmr_1e-3", True)
    assert threshold == pytest.approx(similarity(np.zeros(1), np.array([0.6])))
    assert "dlib default" in source and "uncalibrated" in caplog.text


def test_calibrated_operating_point_is_used_and_mismatches_are_refused():
    resnet = _resnet_manifest()
    points = {
        "score": "models.scoring.similarity",
        "flip": True,
        "calibrated_model_sha256": resnet.sha256,
        "fmr_1e-3": {"threshold": 0.7321, "fmr": 0.001},
        "fmr_1e-4": {"threshold": 0.7555},
    }
    calibrated = replace(resnet, operating_points=points)
    assert decision_threshold(calibrated, "fmr_1e-3", True) == (0.7321, "fmr_1e-3 (calibrated)")
    assert decision_threshold(calibrated, "fmr_1e-4", True)[0] == 0.7555
    with pytest.raises(ModelUnavailable, match="flip"):
        decision_threshold(calibrated, "fmr_1e-3", False)
    for broken, match in (
        ({**points, "score": "cosine"}, "score"),
        ({**points, "calibrated_model_sha256": "0" * 64}, "another model"),
        ({**points, "fmr_1e-3": {"threshold": "high"}}, "not a number"),
    ):
        with pytest.raises(ModelUnavailable, match=match):
            decision_threshold(replace(resnet, operating_points=broken), "fmr_1e-3", True)


def linked_models(directory: Path) -> Path:
    """The built models linked (not copied) into ``directory``, with manifests free to edit."""
    source = built_models()
    directory.mkdir(parents=True, exist_ok=True)
    for name in model_files.MODEL_FILES:
        model = model_files.model_path(source, name)
        (directory / model.name).symlink_to(model)
        manifest_file = manifest.manifest_path_for(model)
        (directory / manifest_file.name).write_bytes(manifest_file.read_bytes())
    return directory


@pytest.mark.needs_lfw
def test_matcher_decides_at_the_manifests_operating_point(tmp_path):
    models = linked_models(tmp_path)
    path = manifest.manifest_path_for(model_files.model_path(models, "dlib_resnet_v1"))
    doc = json.loads(path.read_text())
    doc["operating_points"] = {"flip": True, "fmr_1e-3": {"threshold": 0.99}}
    path.write_text(json.dumps(doc))
    strict = OnnxFaceMatcher(models, threads=1, settings=PipelineSettings())
    assert strict.threshold == 0.99 and strict.model_version.endswith(";fmr_1e-3=0.9900")
    assert strict.model_version.startswith(f"dlib_resnet_v1@{doc['sha256'][:12]}")
    result = strict.compare(observe(frame_of(photo(GENUINE[1]))), portrait(GENUINE[0]))
    assert result.threshold == 0.99 and not result.matched


def test_modified_or_missing_models_are_unavailable(tmp_path):
    models = linked_models(tmp_path)
    detector = model_files.model_path(models, "dlib_mmod_detector")
    data = bytearray(detector.read_bytes())
    data[len(data) // 2] ^= 0x01
    detector.unlink()
    detector.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="modified"):
        OnnxFaceMatcher(models, threads=1, settings=PipelineSettings())
    model_files.model_path(models, "dlib_landmarks_5").unlink()
    detector.unlink()
    with pytest.raises(ModelUnavailable, match="missing"):
        OnnxFaceMatcher(models, threads=1, settings=PipelineSettings())


def test_int8_descriptor_is_loaded_only_through_its_verified_quantization(tmp_path):
    models = linked_models(tmp_path)
    model_files.int8_path(models).unlink()
    with pytest.raises(ModelUnavailable, match="int8 face model missing"):
        OnnxFaceMatcher(models, threads=1, settings=PipelineSettings(precision="int8"))


def test_settings_reject_inconsistent_values():
    with pytest.raises(ValueError, match="below"):
        PipelineSettings(detect_min_face_px=300, detect_max_face_px=200)
    with pytest.raises(ValueError, match="rival"):
        PipelineSettings(rival_area_ratio=0)
    with pytest.raises(ValueError, match="precision"):
        PipelineSettings(precision="fp16")
    stills = PipelineSettings(flip_augment=False).for_stills()
    assert stills.detect_min_face_px is None and not stills.quality_gates and not stills.flip_augment


# --------------------------------------------------------------------------------------------
# Privacy: nothing on disk


@pytest.mark.needs_lfw
def test_pipeline_writes_nothing_to_disk(tmp_path):
    """A whole transaction's worth of work leaves the working directory, HOME and TMPDIR empty.

    onnxruntime's official builds (1.32) write a telemetry device id under HOME and a cache in TMPDIR
    on import unless ORT_DISABLE_TELEMETRY=1 is set first, so that is set here as the kiosk must.
    """
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
import cv2, numpy as np
from drivers.interfaces import Frame
from models.matching import ReferencePortrait
from models.onnx_matcher import OnnxFaceMatcher
from models.pipeline import PipelineSettings
m = OnnxFaceMatcher(Path({str(built_models())!r}), threads=2, settings=PipelineSettings())
rgb = lambda p: cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB)
live = rgb({str(lfw_dir() / GENUINE[1])!r})
frame = np.full((480, 640, 3), 96, np.uint8)
frame[115:365, 195:445] = live
observation = m.observe(Frame(frame, 0.0, 1))
reference = ReferencePortrait(rgb({str(lfw_dir() / GENUINE[0])!r}), "test")
assert m.check_reference(reference) is None
print(m.compare(observation, reference).matched, m.embed_image(live)[1])
m.forget()
"""
    places = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for place in places.values():
        place.mkdir()
    env = {
        **os.environ,
        "HOME": str(places["home"]),
        "TMPDIR": str(places["tmp"]),
        "ORT_DISABLE_TELEMETRY": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=places["cwd"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "ok"]
    assert {name: sorted(p.rglob("*")) for name, p in places.items()} == {name: [] for name in places}
