"""Where the built face models live and how the kiosk opens them, verified against their manifests.

Run-time code: the names and files here are what ``python -m models build`` (``models.tools``)
writes, and what the kiosk loads.
"""

from __future__ import annotations

from pathlib import Path

from models import manifest as mf
from models.matching import ModelUnavailable

REPO_ROOT = Path(__file__).resolve().parents[1]
FP32_NAME = "dlib_resnet_v1"
INT8_NAME = "dlib_resnet_v1_int8"
DETECTOR_NAME = "dlib_mmod_detector"
LANDMARKS_NAME = "dlib_landmarks_5"
# file name per model: the converter decides the format (ONNX graphs, the landmark cascade as npz)
MODEL_FILES = {
    FP32_NAME: f"{FP32_NAME}.onnx",
    DETECTOR_NAME: f"{DETECTOR_NAME}.onnx",
    LANDMARKS_NAME: f"{LANDMARKS_NAME}.npz",
    INT8_NAME: f"{INT8_NAME}.onnx",
}


def default_model_dir() -> Path:
    return REPO_ROOT / "var" / "models"


def model_path(model_dir: Path, name: str) -> Path:
    return model_dir / MODEL_FILES[name]


def fp32_path(model_dir: Path) -> Path:
    return model_path(model_dir, FP32_NAME)


def int8_path(model_dir: Path) -> Path:
    return model_path(model_dir, INT8_NAME)


def load_verified_int8(path: str | Path, *, fp32_manifest: Path | None = None) -> tuple[bytes, mf.Manifest]:
    """The int8 model's bytes and manifest after checking both; raises ModelUnavailable otherwise.

    ``models.manifest.load_verified`` only knows conversions of upstream dlib files, so the int8
    file is checked here: its bytes against its manifest, and its declared source against the
    verified fp32 manifest (by default the one beside it), so an int8 file made from another fp32
    model is refused.
    """
    given = Path(path)
    manifest_file = given if given.name.endswith(mf.MANIFEST_SUFFIX) else mf.manifest_path_for(given)
    if not manifest_file.is_file():
        raise ModelUnavailable(f"int8 face model missing: {manifest_file} (run `python -m models build`)")
    manifest = mf.read_manifest(manifest_file)
    if manifest.name != INT8_NAME or manifest.format != "onnx":
        raise ModelUnavailable(f"{manifest_file} describes {manifest.name!r}, not {INT8_NAME!r}")
    source_manifest_file = (
        fp32_manifest
        if fp32_manifest is not None
        else manifest_file.with_name(FP32_NAME + mf.MANIFEST_SUFFIX)
    )
    source = mf.read_manifest(source_manifest_file) if source_manifest_file.is_file() else None
    if source is None:
        raise ModelUnavailable(f"cannot check the int8 model's source: {source_manifest_file} is missing")
    if (
        source.name != FP32_NAME
        or source.sha256 != manifest.source.sha256
        or source.file != manifest.source.file
    ):
        raise ModelUnavailable(
            f"int8 model {manifest.file} was quantized from {manifest.source.sha256[:12]}…, "
            f"not from the fp32 model {source.sha256[:12]}…; rerun `python -m models build`"
        )
    try:
        data = manifest_file.with_name(manifest.file).read_bytes()
    except OSError as exc:
        raise ModelUnavailable(f"int8 face model missing: {manifest.file} ({exc.strerror or exc})") from exc
    actual = mf.sha256_bytes(data)
    if actual != manifest.sha256 or len(data) != manifest.size_bytes:
        raise ModelUnavailable(
            f"int8 face model {manifest.file} was modified: sha256 {actual[:12]}… does not match its "
            f"manifest ({manifest.sha256[:12]}…); rerun `python -m models build`"
        )
    return data, manifest
