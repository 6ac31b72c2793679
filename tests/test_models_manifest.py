"""Model manifests: the kiosk must refuse a model that is missing, modified or not one we converted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models import manifest, model_files
from models.matching import ModelUnavailable
from models.tools import build
from tests.test_models_convert import ROOT, built_models

DETECTOR = "dlib_mmod_detector"  # the smallest converted model: cheap to copy and tamper with


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A private copy of every converted model and manifest, free to break."""
    source = built_models()
    for name in model_files.MODEL_FILES:
        model = model_files.model_path(source, name)
        shutil.copy2(model, tmp_path / model.name)
        shutil.copy2(manifest.manifest_path_for(model), tmp_path / manifest.manifest_path_for(model).name)
    return tmp_path


def test_verified_load_returns_the_hashed_bytes(model_copy):
    path = model_files.model_path(model_copy, DETECTOR)
    data, m = manifest.load_verified(path)
    assert data == path.read_bytes()
    assert m.name == DETECTOR and m.sha256 == manifest.sha256_bytes(data) and m.size_bytes == len(data)
    # The manifest itself works as the handle too.
    assert manifest.load_verified(manifest.manifest_path_for(path))[0] == data


def test_one_flipped_byte_is_refused(model_copy):
    path = model_files.model_path(model_copy, DETECTOR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="modified"):
        manifest.load_verified(path)


def test_a_missing_model_or_manifest_is_refused(model_copy):
    path = model_files.model_path(model_copy, DETECTOR)
    path.unlink()
    with pytest.raises(ModelUnavailable, match="missing"):
        manifest.load_verified(path)
    other = model_files.model_path(model_copy, "dlib_resnet_v1")
    manifest.manifest_path_for(other).unlink()
    with pytest.raises(ModelUnavailable, match="missing"):
        manifest.load_verified(other)
    with pytest.raises(ModelUnavailable, match="missing"):
        manifest.load_verified(model_copy / "nothing-here.onnx")


def test_an_unknown_model_with_a_self_consistent_manifest_is_refused(model_copy):
    path = model_files.model_path(model_copy, DETECTOR)
    record = json.loads(manifest.manifest_path_for(path).read_text())
    record["source"]["sha256"] = "0" * 64  # e.g. some other detector dropped in with its own manifest
    manifest.manifest_path_for(path).write_text(json.dumps(record))
    with pytest.raises(ModelUnavailable, match="unknown face model"):
        manifest.load_verified(path)
    record["name"] = "shape_predictor_68"
    manifest.manifest_path_for(path).write_text(json.dumps(record))
    with pytest.raises(ModelUnavailable, match="unknown face model"):
        manifest.load_verified(path)


def test_a_corrupt_or_foreign_manifest_is_refused(model_copy):
    path = model_files.model_path(model_copy, DETECTOR)
    manifest.manifest_path_for(path).write_text("{not json")
    with pytest.raises(ModelUnavailable, match="unreadable"):
        manifest.load_verified(path)
    manifest.manifest_path_for(path).write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ModelUnavailable, match="unreadable"):
        manifest.load_verified(path)


def test_a_manifest_pointing_at_another_file_is_refused(model_copy):
    detector = model_files.model_path(model_copy, DETECTOR)
    resnet = model_files.model_path(model_copy, "dlib_resnet_v1")
    shutil.copy2(manifest.manifest_path_for(resnet), manifest.manifest_path_for(detector))
    with pytest.raises(ModelUnavailable, match="describes"):
        manifest.load_verified(detector)


def test_manifest_json_is_sorted_and_round_trips(model_copy):
    text = manifest.manifest_path_for(model_files.model_path(model_copy, "dlib_resnet_v1")).read_text()
    parsed = manifest.Manifest.from_json(text)
    assert parsed.to_json() == text
    keys = list(json.loads(text))
    assert keys == sorted(keys) and text.endswith("\n")


def test_verify_models_cli_reports_a_tampered_model(model_copy):
    path = model_files.model_path(model_copy, DETECTOR)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    result = subprocess.run(
        [sys.executable, "-m", "models", "verify-models", "--dir", str(model_copy)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert result.returncode == 1
    assert f"{DETECTOR}: UNUSABLE" in result.stdout and "modified" in result.stdout
    assert "dlib_resnet_v1: ok" in result.stdout


def test_a_tampered_model_is_rebuilt_not_served_from_cache(model_copy):
    path = model_files.model_path(model_copy, DETECTOR)
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    results = {r.name: r.status for r in build.build_all(model_copy)}
    assert results == {
        "dlib_resnet_v1": "cached",
        DETECTOR: "built",
        "dlib_landmarks_5": "cached",
        "dlib_resnet_v1_int8": "cached",
    }
    assert path.read_bytes() == good
