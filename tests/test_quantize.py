"""The int8 ResNet: deterministic, close to fp32 on real chips, and guarded by its manifest.

Quantizes a copy of the fp32 model in a temporary folder with a small calibration set (real LFW
chips read in place), so the test does not depend on ``python -m models quantize`` having run.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest

from models import align, bench, quantize, runtime
from models import manifest as mf
from models.evaluation import load_lfw, read_rgb, similarity
from models.matching import ModelUnavailable
from tests.test_models_convert import built_models, lfw_dir


@functools.cache
def real_chips() -> tuple[np.ndarray, np.ndarray]:
    """(calibration chips with mirrors, held-out chips): real faces through our fp32 chain."""
    ds = load_lfw(lfw_dir().parent)
    chain = bench.OnnxChain.load(built_models())
    picks = quantize.pick_calibration_images(ds.labels, ds.usable, 24, seed=7)
    chips = [c for c in (chain.chip(read_rgb(ds.paths[i])) for i in picks[:24]) if c is not None]
    assert len(chips) >= 20
    calibration = np.stack([x for c in chips[:12] for x in (c, align.flip(c))])
    return calibration, np.stack(chips[12:])


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, mf.Manifest]:
    model_dir = tmp_path_factory.mktemp("int8")
    source = quantize.fp32_path(built_models())
    shutil.copy(source, model_dir / source.name)
    shutil.copy(mf.manifest_path_for(source), mf.manifest_path_for(model_dir / source.name))
    calibration = quantize.CalibrationSet(real_chips()[0], {"test": "12 LFW chips + mirrors"})
    no_calibration = model_dir / "no-calibration"
    no_calibration.mkdir()
    return quantize.quantize(model_dir, calibration, calibration_dir=no_calibration)


def test_int8_descriptors_stay_close_to_fp32_on_held_out_chips(quantized):
    path, _ = quantized
    held_out = real_chips()[1]
    fp32 = runtime.embed(runtime.make_session(quantize.fp32_path(path.parent)), held_out)
    int8 = runtime.embed(runtime.make_session(path), held_out)
    drift = np.linalg.norm(fp32 - int8, axis=1)
    assert drift.max() <= 0.1, drift  # Euclidean; dlib's same-person threshold is 0.6
    # the scores between different faces move by half that at most
    pairs = [(i, j) for i in range(len(held_out)) for j in range(i + 1, len(held_out))]
    moved = [abs(similarity(fp32[i], fp32[j]) - similarity(int8[i], int8[j])) for i, j in pairs]
    assert max(moved) <= 0.05


def test_int8_model_is_qdq_per_channel_and_smaller(quantized):
    import onnx

    path, manifest = quantized
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    conv_weight_scales = [
        t for t in model.graph.initializer if t.name.endswith("_scale") and len(t.dims) == 1 and t.dims[0] > 1
    ]
    assert conv_weight_scales, "expected per-channel weight scales"
    assert manifest.size_bytes < 0.35 * quantize.fp32_path(path.parent).stat().st_size


def test_quantization_is_deterministic(quantized, tmp_path: Path):
    path, manifest = quantized
    calibration = quantize.CalibrationSet(real_chips()[0], {"test": "again"})
    again = quantize.quantize_bytes(quantize.fp32_path(path.parent), calibration)
    assert mf.sha256_bytes(again) == manifest.sha256


def test_manifest_names_its_source_and_is_verified(quantized, tmp_path: Path):
    path, manifest = quantized
    _, fp32_manifest = mf.load_verified(quantize.fp32_path(path.parent))
    data, loaded = quantize.load_verified_int8(path)
    assert loaded == manifest and mf.sha256_bytes(data) == manifest.sha256
    assert manifest.name == quantize.INT8_NAME and manifest.source.sha256 == fp32_manifest.sha256
    assert manifest.converter["method"]["format"] == "QDQ" and manifest.converter["method"]["per_channel"]
    assert manifest.converter["calibration_set"] == {"test": "12 LFW chips + mirrors"}
    assert manifest.operating_points == {}  # no calibration measured on these bytes

    copy = tmp_path / "copy"
    copy.mkdir()
    for file in path.parent.glob("dlib_resnet_v1*"):
        shutil.copy(file, copy / file.name)
    target = quantize.int8_path(copy)
    # a modified file
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelUnavailable, match="modified"):
        quantize.load_verified_int8(target)
    shutil.copy(path, target)
    quantize.load_verified_int8(target)
    # quantized from another fp32 model than the one beside it
    fp32_manifest_file = mf.manifest_path_for(quantize.fp32_path(copy))
    text = fp32_manifest_file.read_text().replace(fp32_manifest.sha256, "0" * 64)
    fp32_manifest_file.write_text(text)
    with pytest.raises(ModelUnavailable, match="quantized from"):
        quantize.load_verified_int8(target)
    fp32_manifest_file.unlink()
    with pytest.raises(ModelUnavailable, match="source"):
        quantize.load_verified_int8(target)
    # the generic loader does not know the derived model: it must not slip through it either
    with pytest.raises(ModelUnavailable):
        mf.load_verified(target)


def test_calibration_images_are_seeded_and_one_per_person():
    ds = load_lfw(lfw_dir().parent)
    a = quantize.pick_calibration_images(ds.labels, ds.usable, 50, seed=1)
    b = quantize.pick_calibration_images(ds.labels, ds.usable, 50, seed=1)
    np.testing.assert_array_equal(a, b)
    assert len(set(ds.labels[a].tolist())) == len(a)
    assert ds.usable[a].all()
    assert not np.array_equal(a[:50], quantize.pick_calibration_images(ds.labels, ds.usable, 50, seed=2)[:50])
