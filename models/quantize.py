"""``python -m models quantize``: a static int8 (QDQ, per-channel) copy of the face-descriptor ResNet.

onnxruntime's ``quant_pre_process`` first (constant folding and shape inference), then
``quantize_static`` in QDQ format with per-channel int8 weights and MinMax-calibrated activations,
calibrated on real aligned chips (a seeded sample of the dev set, each chip and its mirror image,
as the flip-augmented pipeline feeds them). The result sits beside the fp32 model as
``dlib_resnet_v1_int8.onnx`` with its own manifest, whose ``source`` is the fp32 ONNX file (by
sha256) and whose ``converter`` records the quantizer settings and the calibration set.

Determinism: MinMax calibration over a fixed, ordered set of chips is a pure min/max reduction, and
the quantizer writes tensors in graph order, so the same inputs give the same bytes (checked by
quantizing twice in the tests). Symbolic shape inference is skipped: the graph's shapes are static
apart from the batch axis, which ONNX's own shape inference handles, and it would need sympy.

Build-time only (``onnxruntime.quantization`` imports the ``onnx`` package); run-time code opens the
result through :func:`load_verified_int8`, which needs neither.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import evaluation
from models import manifest as mf
from models.matching import ModelUnavailable
from models.pyramid import DEFAULT_MEAN_RGB

FP32_NAME = "dlib_resnet_v1"
INT8_NAME = "dlib_resnet_v1_int8"
QUANTIZER_VERSION = "1"
DEFAULT_CALIBRATION_IMAGES = 256
DEFAULT_SEED = 20261127
CALIBRATION_BATCH = 16
ACTIVATION_TYPES = ("u8", "s8")
# u8 activations with s8 weights (U8S8): onnxruntime's fast integer kernels on x86 without VNNI
# need it (measured 1.1 ms vs 2.9 ms per chip for S8S8 here, the same accuracy), and ARM64's
# udot/sdot kernels take either. Re-measure on the Pi before changing.
DEFAULT_ACTIVATIONS = "u8"


def fp32_path(model_dir: Path) -> Path:
    return model_dir / f"{FP32_NAME}.onnx"


def int8_path(model_dir: Path) -> Path:
    return model_dir / f"{INT8_NAME}.onnx"


def chips_to_tensor(chips: np.ndarray, mean_rgb: Sequence[float] = DEFAULT_MEAN_RGB) -> np.ndarray:
    """The ResNet's input for N uint8 RGB chips; the same arithmetic as ``models.runtime.embed``."""
    batch = np.asarray(chips)
    if batch.ndim == 3:
        batch = batch[None]
    return np.ascontiguousarray(
        (batch.astype(np.float32) - np.asarray(mean_rgb, np.float32)).transpose(0, 3, 1, 2) / np.float32(256)
    )


@dataclass(frozen=True)
class CalibrationSet:
    """Aligned chips the activation ranges are measured on, and a description for the manifest."""

    chips: np.ndarray  # (N, 150, 150, 3) uint8, in the order they are fed
    description: dict[str, Any]


def _chip_reader(chips: np.ndarray, input_name: str, batch: int = CALIBRATION_BATCH):
    from onnxruntime.quantization import CalibrationDataReader

    class ChipReader(CalibrationDataReader):
        """Fixed batches in a fixed order: the calibration is a pure function of the chip set."""

        def __init__(self) -> None:
            self._batches: Iterator[dict[str, np.ndarray]] = iter(
                [{input_name: chips_to_tensor(chips[i : i + batch])} for i in range(0, len(chips), batch)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return ChipReader()


def quantize_bytes(
    fp32_model: Path, calibration: CalibrationSet, activations: str = DEFAULT_ACTIVATIONS
) -> bytes:
    """The int8 QDQ model's bytes (work files in a temporary directory)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if activations not in ACTIVATION_TYPES:
        raise ValueError(f"activations must be one of {ACTIVATION_TYPES}")
    with tempfile.TemporaryDirectory(prefix="gerbang-quant-") as work:
        pre = Path(work) / "pre.onnx"
        out = Path(work) / "int8.onnx"
        quant_pre_process(str(fp32_model), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            _chip_reader(calibration.chips, "input"),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8 if activations == "u8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return out.read_bytes()


def _quantizer_info(activations: str, calibration: CalibrationSet) -> dict[str, Any]:
    import onnx
    import onnxruntime

    return {
        "module": "models.quantize",
        "version": QUANTIZER_VERSION,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "method": {
            "pre_process": "onnxruntime.quantization.quant_pre_process (skip_symbolic_shape)",
            "quantize": "onnxruntime.quantization.quantize_static",
            "format": "QDQ",
            "per_channel": True,
            "weights": "int8 (symmetric)",
            "activations": "uint8 (asymmetric)" if activations == "u8" else "int8 (asymmetric)",
            "calibrate_method": "MinMax",
        },
        "calibration_set": calibration.description,
    }


def quantize(
    model_dir: Path,
    calibration: CalibrationSet,
    *,
    activations: str = DEFAULT_ACTIVATIONS,
    calibration_dir: Path | None = None,
) -> tuple[Path, mf.Manifest]:
    """Write ``dlib_resnet_v1_int8.onnx`` and its manifest next to the (verified) fp32 model.

    The manifest's ``operating_points`` are filled from ``models/calibration`` only when that
    calibration was measured on exactly these bytes (same sha256); otherwise they stay empty until
    ``python -m models calibrate`` has run and the model is quantized again (same bytes).
    """
    fp32_bytes, fp32_manifest = mf.load_verified(fp32_path(model_dir))
    with tempfile.TemporaryDirectory(prefix="gerbang-quant-src-") as work:
        # quantize exactly the bytes that were verified, not whatever is at the path a moment later
        source = Path(work) / fp32_manifest.file
        source.write_bytes(fp32_bytes)
        data = quantize_bytes(source, calibration, activations)
    target = int8_path(model_dir)
    sha = mf.sha256_bytes(data)
    points = evaluation.operating_points_for(INT8_NAME, calibration_dir=calibration_dir)
    if points.get("calibrated_model_sha256") != sha:
        points = {}
    output = dict(fp32_manifest.output)
    output["quantized"] = "int8 QDQ; compare with models.evaluation.similarity at the int8 thresholds"
    manifest = mf.Manifest(
        name=INT8_NAME,
        file=target.name,
        sha256=sha,
        size_bytes=len(data),
        format="onnx",
        source=mf.Source(
            package="gerbang (models.quantize)",
            version=QUANTIZER_VERSION,
            file=fp32_manifest.file,
            sha256=fp32_manifest.sha256,
        ),
        licence=fp32_manifest.licence,
        licence_note=fp32_manifest.licence_note + " The int8 file is a derived quantization of it.",
        training_data=fp32_manifest.training_data,
        input=dict(fp32_manifest.input),
        output=output,
        converter=_quantizer_info(activations, calibration),
        operating_points=points,
    )
    mf.write_atomic(target, data)
    mf.write_atomic(mf.manifest_path_for(target), manifest.to_json().encode("utf-8"))
    return target, manifest


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
        raise ModelUnavailable(f"int8 face model missing: {manifest_file} (run `python -m models quantize`)")
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
            f"not from the fp32 model {source.sha256[:12]}…; rerun `python -m models quantize`"
        )
    try:
        data = manifest_file.with_name(manifest.file).read_bytes()
    except OSError as exc:
        raise ModelUnavailable(f"int8 face model missing: {manifest.file} ({exc.strerror or exc})") from exc
    actual = mf.sha256_bytes(data)
    if actual != manifest.sha256 or len(data) != manifest.size_bytes:
        raise ModelUnavailable(
            f"int8 face model {manifest.file} was modified: sha256 {actual[:12]}… does not match its "
            f"manifest ({manifest.sha256[:12]}…); rerun `python -m models quantize`"
        )
    return data, manifest


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
