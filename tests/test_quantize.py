"""The int8 ResNet: built from the committed activation ranges alone, byte for byte; close to fp32 on
real chips; its ranges re-measured from real faces give the same model as quantizing with them.

The build tests need no face images (a fresh clone has none); the tests on real chips need the LFW
dev set and carry ``needs_lfw``.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models import align, model_files, runtime
from models import manifest as mf
from models.matching import ModelUnavailable
from models.scoring import similarity
from models.tools import chains, lfw, quantize
from models.tools.embeddings import read_rgb
from tests.lfw import lfw_dir
from tests.test_models_convert import built_models


def fp32_only(directory: Path) -> Path:
    """A model folder holding just the fp32 ResNet and its manifest (the int8 build's input)."""
    directory.mkdir(parents=True, exist_ok=True)
    source = model_files.fp32_path(built_models())
    shutil.copy(source, directory / source.name)
    shutil.copy(mf.manifest_path_for(source), mf.manifest_path_for(directory / source.name))
    return directory


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = fp32_only(tmp_path_factory.mktemp("int8"))
    quantize.build_int8(directory)
    return directory


def test_build_from_the_committed_ranges_is_byte_identical_anywhere(int8_dir: Path, tmp_path: Path):
    other = fp32_only(tmp_path / "elsewhere")
    path, status = quantize.build_int8(other)
    assert status == "built"
    first = model_files.int8_path(int8_dir).read_bytes()
    assert path.read_bytes() == first
    assert mf.sha256_bytes(first) == mf.sha256_bytes(model_files.int8_path(built_models()).read_bytes())
    # cached while current, rebuilt to the same bytes when forced
    assert quantize.build_int8(other)[1] == "cached"
    assert quantize.build_int8(other, force=True)[1] == "built" and path.read_bytes() == first


def test_ranges_for_another_fp32_model_fail_clearly(tmp_path: Path):
    doc = quantize.read_ranges()
    doc["fp32_model"]["sha256"] = "0" * 64
    ranges = quantize.write_ranges(doc, tmp_path / "ranges.json")
    with pytest.raises(ModelUnavailable, match="python -m models calibrate"):
        quantize.build_int8(fp32_only(tmp_path / "models"), ranges_file=ranges)


def test_committed_ranges_are_valid_and_belong_to_todays_fp32_model():
    text = quantize.RANGES_FILE.read_text()
    doc = json.loads(text)
    quantize.validate_ranges(doc)
    assert quantize.dump_ranges(doc) == text  # stable bytes
    _, fp32 = mf.load_verified(model_files.fp32_path(built_models()))
    assert doc["fp32_model"]["sha256"] == fp32.sha256
    assert len(text) < 20_000 and len(doc["activation_ranges"]) > 50
    for broken in (
        doc | {"schema_version": 2},
        doc | {"activations": "u4"},
        doc | {"activation_ranges": {"conv": [1.0, -1.0]}},
        doc | {"activation_ranges": {"conv": [float("nan"), 1.0]}},
        {k: v for k, v in doc.items() if k != "fp32_model"},
    ):
        with pytest.raises(ValueError):
            quantize.validate_ranges(broken)


def test_int8_model_is_qdq_per_channel_and_smaller(int8_dir: Path):
    import onnx

    path = model_files.int8_path(int8_dir)
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    conv_weight_scales = [
        t for t in model.graph.initializer if t.name.endswith("_scale") and len(t.dims) == 1 and t.dims[0] > 1
    ]
    assert conv_weight_scales, "expected per-channel weight scales"
    assert path.stat().st_size < 0.35 * model_files.fp32_path(int8_dir).stat().st_size


def test_manifest_names_its_source_and_is_verified(int8_dir: Path, tmp_path: Path):
    path = model_files.int8_path(int8_dir)
    _, fp32_manifest = mf.load_verified(model_files.fp32_path(int8_dir))
    data, manifest = model_files.load_verified_int8(path)
    assert mf.sha256_bytes(data) == manifest.sha256
    assert manifest.name == model_files.INT8_NAME and manifest.source.sha256 == fp32_manifest.sha256
    assert manifest.converter["method"]["format"] == "QDQ" and manifest.converter["method"]["per_channel"]
    assert manifest.converter["ranges_sha256"] == mf.sha256_file(quantize.RANGES_FILE)
    assert manifest.converter["calibration_set"] == quantize.read_ranges()["calibration_set"]

    copy = tmp_path / "copy"
    copy.mkdir()
    for file in int8_dir.glob("dlib_resnet_v1*"):
        shutil.copy(file, copy / file.name)
    target = model_files.int8_path(copy)
    # a modified file
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelUnavailable, match="modified"):
        model_files.load_verified_int8(target)
    shutil.copy(path, target)
    model_files.load_verified_int8(target)
    # quantized from another fp32 model than the one beside it
    fp32_manifest_file = mf.manifest_path_for(model_files.fp32_path(copy))
    text = fp32_manifest_file.read_text().replace(fp32_manifest.sha256, "0" * 64)
    fp32_manifest_file.write_text(text)
    with pytest.raises(ModelUnavailable, match="quantized from"):
        model_files.load_verified_int8(target)
    fp32_manifest_file.unlink()
    with pytest.raises(ModelUnavailable, match="source"):
        model_files.load_verified_int8(target)
    # the generic loader does not know the derived model: it must not slip through it either
    with pytest.raises(ModelUnavailable):
        mf.load_verified(target)


# --------------------------------------------------------------------------------------------
# On real faces


@functools.cache
def real_chips() -> tuple[np.ndarray, np.ndarray]:
    """(calibration chips with mirrors, held-out chips): real faces through our fp32 chain."""
    ds = lfw.load_lfw(lfw_dir().parent)
    chain = chains.OnnxChain.load(built_models())
    picks = quantize.pick_calibration_images(ds.labels, ds.usable, 24, seed=7)
    chips = [c for c in (chain.chip(read_rgb(ds.paths[i])) for i in picks[:24]) if c is not None]
    assert len(chips) >= 20
    calibration = np.stack([x for c in chips[:12] for x in (c, align.flip(c))])
    return calibration, np.stack(chips[12:])


@pytest.mark.needs_lfw
def test_quantizing_from_measured_ranges_equals_quantizing_while_measuring(tmp_path: Path):
    fp32 = model_files.fp32_path(built_models())
    chips = real_chips()[0]
    quantize._quantize_static(fp32, tmp_path / "direct.onnx", tmp_path / "cache.json", "u8", chips)
    ranges = quantize.measure_ranges(fp32, chips, "u8")
    assert all(isinstance(lo, float) and lo <= hi for lo, hi in ranges.values())
    from_ranges = quantize.quantize_bytes(fp32, ranges, "u8")
    assert mf.sha256_bytes(from_ranges) == mf.sha256_file(tmp_path / "direct.onnx")
    # through the JSON file and back: still the same bytes
    _, manifest = mf.load_verified(fp32)
    doc = quantize.ranges_document(manifest, ranges, "u8", {"test": "12 LFW chips + mirrors"})
    again = quantize.read_ranges(quantize.write_ranges(doc, tmp_path / "ranges.json"))
    assert quantize.quantize_bytes(fp32, again["activation_ranges"], "u8") == from_ranges


@pytest.mark.needs_lfw
def test_int8_descriptors_stay_close_to_fp32_on_held_out_chips(int8_dir: Path):
    held_out = real_chips()[1]
    fp32 = runtime.embed(runtime.make_session(model_files.fp32_path(int8_dir)), held_out)
    int8 = runtime.embed(runtime.make_session(model_files.int8_path(int8_dir)), held_out)
    drift = np.linalg.norm(fp32 - int8, axis=1)
    assert drift.max() <= 0.1, drift  # Euclidean; dlib's same-person threshold is 0.6
    # the scores between different faces move by half that at most
    pairs = [(i, j) for i in range(len(held_out)) for j in range(i + 1, len(held_out))]
    moved = [abs(similarity(fp32[i], fp32[j]) - similarity(int8[i], int8[j])) for i, j in pairs]
    assert max(moved) <= 0.05


@pytest.mark.needs_lfw
def test_calibration_images_are_seeded_and_one_per_person():
    ds = lfw.load_lfw(lfw_dir().parent)
    a = quantize.pick_calibration_images(ds.labels, ds.usable, 50, seed=1)
    b = quantize.pick_calibration_images(ds.labels, ds.usable, 50, seed=1)
    np.testing.assert_array_equal(a, b)
    assert len(set(ds.labels[a].tolist())) == len(a)
    assert ds.usable[a].all()
    assert not np.array_equal(a[:50], quantize.pick_calibration_images(ds.labels, ds.usable, 50, seed=2)[:50])
