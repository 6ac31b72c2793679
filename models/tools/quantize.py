"""The int8 face descriptor: a static QDQ, per-channel copy of the ResNet, built without any face images.

Static int8 needs the range of every activation tensor. Those ranges are measured once on real
aligned chips (``python -m models calibrate``: a seeded sample of the dev set, each chip and its
mirror image, as the flip-augmented pipeline feeds them; MinMax) and committed as
``models/calibration/dlib_resnet_v1_int8_ranges.json`` together with the sha256 of the fp32 model
they belong to. ``python -m models build`` then quantizes from that file alone: the weights'
per-channel scales come from the weights themselves, the activations' scales and zero points from
the committed ranges, so a clone without the dev set builds the same int8 model.

onnxruntime's ``quant_pre_process`` first (constant folding and shape inference), then
``quantize_static`` in QDQ format (int8 symmetric per-channel weights) fed the ranges through its
calibration cache. Determinism: MinMax over a fixed, ordered chip set is a pure reduction, the
ranges are stored as exact float32 values, and the quantizer writes tensors in graph order, so the
same ranges and fp32 model give the same bytes (tested by building twice). Symbolic shape inference
is skipped: the graph's shapes are static apart from the batch axis, and it would need sympy.

Build-time only (``onnxruntime.quantization`` imports the ``onnx`` package); the kiosk opens the
result through :func:`models.model_files.load_verified_int8`, which needs neither.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import manifest as mf
from models import runtime
from models.matching import ModelUnavailable
from models.model_files import FP32_NAME, INT8_NAME, fp32_path, int8_path, load_verified_int8
from models.tools import thresholds

QUANTIZER_VERSION = "2"
RANGES_SCHEMA = "gerbang.int8-activation-ranges"
RANGES_SCHEMA_VERSION = 1
RANGES_FILE = thresholds.CALIBRATION_DIR / f"{INT8_NAME}_ranges.json"
DEFAULT_CALIBRATION_IMAGES = 256
DEFAULT_SEED = 20261127
CALIBRATION_BATCH = 16
# onnxruntime's MinMax calibrator reduces each tensor to (1,) arrays; the quantizer is fed the same
RANGE_SHAPE = (1,)
ACTIVATION_TYPES = ("u8", "s8")
# u8 activations with s8 weights (U8S8): onnxruntime's fast integer kernels on x86 without VNNI
# need it (measured 1.1 ms vs 2.9 ms per chip for S8S8 here, the same accuracy), and ARM64's
# udot/sdot kernels take either. Re-measure on the Pi before changing.
DEFAULT_ACTIVATIONS = "u8"
METHOD = {
    "pre_process": "onnxruntime.quantization.quant_pre_process (skip_symbolic_shape)",
    "quantize": "onnxruntime.quantization.quantize_static (ranges from the calibration cache)",
    "format": "QDQ",
    "per_channel": True,
    "weights": "int8 (symmetric)",
    "calibrate_method": "MinMax",
}


def _chip_reader(chips: np.ndarray, input_name: str, batch: int = CALIBRATION_BATCH):
    from onnxruntime.quantization import CalibrationDataReader

    class ChipReader(CalibrationDataReader):
        """Fixed batches in a fixed order: the calibration is a pure function of the chip set."""

        def __init__(self) -> None:
            self._batches: Iterator[dict[str, np.ndarray]] = iter(
                [
                    {input_name: runtime.chips_to_tensor(chips[i : i + batch])}
                    for i in range(0, len(chips), batch)
                ]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return ChipReader()


def _quantize_static(
    fp32_model: Path, out: Path, cache: Path, activations: str, chips: np.ndarray | None = None
) -> None:
    """onnxruntime's static quantization; with ``chips`` it measures the ranges into ``cache``, without
    it reads them from there. Both paths go through the same call, so they cannot drift apart."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if activations not in ACTIVATION_TYPES:
        raise ValueError(f"activations must be one of {ACTIVATION_TYPES}")
    pre = out.with_name("pre.onnx")
    quant_pre_process(str(fp32_model), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(out),
        None if chips is None else _chip_reader(chips, "input"),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8 if activations == "u8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        calibration_cache_path=str(cache),
    )


def measure_ranges(fp32_model: Path, chips: np.ndarray, activations: str) -> dict[str, list[float]]:
    """Every activation tensor's [min, max] over ``chips`` (exact float32 values), by tensor name."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    with tempfile.TemporaryDirectory(prefix="gerbang-calib-") as work:
        cache = Path(work) / "ranges.json"
        _quantize_static(fp32_model, Path(work) / "int8.onnx", cache, activations, chips)
        measured = load_tensors_data(cache)
    ranges: dict[str, list[float]] = {}
    for name, data in sorted(measured.data.items()):
        lowest, highest = np.asarray(data.lowest), np.asarray(data.highest)
        if lowest.dtype != np.float32 or lowest.shape != RANGE_SHAPE or highest.shape != RANGE_SHAPE:
            raise ValueError(f"{name}: unexpected range {lowest.dtype} {lowest.shape}; quantizer changed?")
        ranges[name] = [float(lowest[0]), float(highest[0])]
    return ranges


def quantize_bytes(fp32_model: Path, ranges: Mapping[str, Sequence[float]], activations: str) -> bytes:
    """The int8 QDQ model's bytes from committed activation ranges (work files in a temporary folder)."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        TensorData,
        TensorsData,
        save_tensors_data,
    )

    data = {
        name: TensorData(
            lowest=np.full(RANGE_SHAPE, lo, np.float32), highest=np.full(RANGE_SHAPE, hi, np.float32)
        )
        for name, (lo, hi) in ranges.items()
    }
    with tempfile.TemporaryDirectory(prefix="gerbang-quant-") as work:
        cache = Path(work) / "ranges.json"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
        out = Path(work) / "int8.onnx"
        _quantize_static(fp32_model, out, cache, activations)
        return out.read_bytes()


# --------------------------------------------------------------------------------------------
# The committed ranges file


def ranges_document(
    fp32: mf.Manifest, ranges: Mapping[str, Sequence[float]], activations: str, calibration_set: dict
) -> dict[str, Any]:
    import onnxruntime

    return {
        "schema": RANGES_SCHEMA,
        "schema_version": RANGES_SCHEMA_VERSION,
        "model": INT8_NAME,
        "fp32_model": {"name": FP32_NAME, "file": fp32.file, "sha256": fp32.sha256},
        "activations": activations,
        "method": METHOD,
        "measured_with": {"onnxruntime": onnxruntime.__version__},
        "calibration_set": calibration_set,
        "activation_ranges": {name: [float(lo), float(hi)] for name, (lo, hi) in sorted(ranges.items())},
    }


def dump_ranges(doc: Mapping[str, Any]) -> str:
    """Sorted keys, indented: the same ranges give the same bytes and a readable diff."""
    validate_ranges(doc)
    return json.dumps(doc, sort_keys=True, indent=1, allow_nan=False) + "\n"


def validate_ranges(doc: Mapping[str, Any]) -> None:
    if doc.get("schema") != RANGES_SCHEMA or doc.get("schema_version") != RANGES_SCHEMA_VERSION:
        raise ValueError(f"not an int8 ranges file ({doc.get('schema')!r} v{doc.get('schema_version')!r})")
    if doc.get("activations") not in ACTIVATION_TYPES:
        raise ValueError(f"activations must be one of {ACTIVATION_TYPES}")
    ranges = doc.get("activation_ranges")
    if not isinstance(ranges, dict) or not ranges:
        raise ValueError("no activation ranges")
    for name, pair in ranges.items():
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in pair)
            or pair[0] > pair[1]
        ):
            raise ValueError(f"activation range of {name!r} is not [min, max]: {pair!r}")
    if not isinstance(doc.get("fp32_model"), dict) or len(str(doc["fp32_model"].get("sha256", ""))) != 64:
        raise ValueError("the fp32 model the ranges belong to is not named by sha256")


def read_ranges(path: Path = RANGES_FILE) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        validate_ranges(doc)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"int8 calibration ranges unusable: {path} ({exc})") from exc
    return doc


def write_ranges(doc: Mapping[str, Any], path: Path = RANGES_FILE) -> Path:
    mf.write_atomic(path, dump_ranges(doc).encode("utf-8"))
    return path


# --------------------------------------------------------------------------------------------
# Building the int8 model


def _converter_info(doc: Mapping[str, Any], ranges_file: Path) -> dict[str, Any]:
    import onnx
    import onnxruntime

    return {
        "module": "models.tools.quantize",
        "version": QUANTIZER_VERSION,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "method": METHOD
        | {"activations": "uint8 (asymmetric)" if doc["activations"] == "u8" else "int8 (asymmetric)"},
        "ranges_file": ranges_file.name,
        "ranges_sha256": hashlib.sha256(dump_ranges(doc).encode("utf-8")).hexdigest(),
        "calibration_set": doc["calibration_set"],
    }


def int8_is_current(model_dir: Path, ranges_file: Path = RANGES_FILE) -> bool:
    """The int8 model verifies, comes from the fp32 model beside it, and from today's ranges and quantizer."""
    try:
        _, existing = load_verified_int8(int8_path(model_dir))
        return existing.converter == _converter_info(read_ranges(ranges_file), ranges_file)
    except ModelUnavailable:
        return False


def build_int8(model_dir: Path, *, ranges_file: Path = RANGES_FILE, force: bool = False) -> tuple[Path, str]:
    """Write ``dlib_resnet_v1_int8.onnx`` and its manifest next to the (verified) fp32 model.

    Returns (path, "built" | "cached"). Raises ModelUnavailable when the ranges belong to another
    fp32 model. The manifest's ``operating_points`` are filled from ``models/calibration`` only when
    those thresholds were measured on exactly these bytes.
    """
    fp32_bytes, fp32_manifest = mf.load_verified(fp32_path(model_dir))
    doc = read_ranges(ranges_file)
    expected = doc["fp32_model"]["sha256"]
    if expected != fp32_manifest.sha256:
        raise ModelUnavailable(
            f"{ranges_file.name} holds int8 ranges for the fp32 model {expected[:12]}…, but "
            f"{fp32_manifest.file} is {fp32_manifest.sha256[:12]}…; recompute them from real faces with "
            "`python -m models calibrate --data DIR`"
        )
    target = int8_path(model_dir)
    if not force and int8_is_current(model_dir, ranges_file):
        return target, "cached"
    with tempfile.TemporaryDirectory(prefix="gerbang-quant-src-") as work:
        # quantize exactly the bytes that were verified, not whatever is at the path a moment later
        source = Path(work) / fp32_manifest.file
        source.write_bytes(fp32_bytes)
        data = quantize_bytes(source, doc["activation_ranges"], doc["activations"])
    sha = mf.sha256_bytes(data)
    output = dict(fp32_manifest.output)
    output["quantized"] = "int8 QDQ; compare with models.scoring.similarity at the int8 thresholds"
    manifest = mf.Manifest(
        name=INT8_NAME,
        file=target.name,
        sha256=sha,
        size_bytes=len(data),
        format="onnx",
        source=mf.Source(
            package="gerbang (models.tools.quantize)",
            version=QUANTIZER_VERSION,
            file=fp32_manifest.file,
            sha256=fp32_manifest.sha256,
        ),
        licence=fp32_manifest.licence,
        licence_note=fp32_manifest.licence_note + " The int8 file is a derived quantization of it.",
        training_data=fp32_manifest.training_data,
        input=dict(fp32_manifest.input),
        output=output,
        converter=_converter_info(doc, ranges_file),
        operating_points=thresholds.calibrated_points(INT8_NAME, sha),
    )
    mf.write_atomic(target, data)
    mf.write_atomic(mf.manifest_path_for(target), manifest.to_json().encode("utf-8"))
    return target, "built"


def names_digest(names: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(names)).encode("utf-8")).hexdigest()


def pick_calibration_images(
    labels: np.ndarray, usable: np.ndarray, count: int, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """Indices of ``count`` usable images of distinct people (one each), seeded; in a fixed order.

    Distinct people so a few heavily photographed politicians do not dominate the ranges. Returns
    more candidates than ``count`` (a shuffled list of every person's pick) so a caller can skip
    images where no face is found and still reach ``count``.
    """
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(usable)
    order = rng.permutation(candidates)
    seen: set[int] = set()
    picked: list[int] = []
    for index in order.tolist():
        label = int(labels[index])
        if label in seen:
            continue
        seen.add(label)
        picked.append(index)
    if len(picked) < count:
        raise ValueError(f"only {len(picked)} distinct people for {count} calibration images")
    return np.asarray(picked, np.int64)
