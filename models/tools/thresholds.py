"""Calibration files (``models/calibration/dlib_resnet_v1.json``): the thresholds at target FMRs
measured on the dev set, and what a model manifest's ``operating_points`` get from them."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.scoring import SCORE_DEFINITION, SCORE_NAME
from models.tools.lfw import Dataset
from models.tools.metrics import THRESHOLD_DECIMALS, Evaluation, fmr_key, rounded_for_json

CALIBRATION_DIR = Path(__file__).resolve().parents[1] / "calibration"
CALIBRATION_SCHEMA = "gerbang.face-calibration"
CALIBRATION_SCHEMA_VERSION = 1
_REQUIRED_TOP = ("schema", "schema_version", "model", "date", "dataset", "score", "pipeline", "variants")
_REQUIRED_VARIANT = ("precision", "flip", "model_file", "model_sha256", "operating_points", "eer")
_REQUIRED_POINT = (
    "threshold",
    "fmr",
    "fnmr",
    "n_impostor",
    "n_genuine",
    "false_matches",
    "false_non_matches",
)


def variant_key(precision: str, flip: bool) -> str:
    return f"{precision}_flip" if flip else precision


def build_calibration(
    model: str,
    dataset: Dataset,
    pipeline: Mapping[str, Any],
    variants: Mapping[str, tuple[Evaluation, Mapping[str, Any]]],
    *,
    default_variant: str,
    int8_verdict: Mapping[str, Any] | None = None,
    date: dt.date | None = None,
) -> dict[str, Any]:
    """The calibration document: one entry per (precision, flip) variant of ``model``.

    ``variants`` maps a key from :func:`variant_key` to (evaluation, {"precision", "flip",
    "model_file", "model_sha256"}).
    """
    body: dict[str, Any] = {}
    for key, (evaluation, info) in variants.items():
        entry = dict(info)
        entry.update(
            {
                "eer": round(evaluation.eer.eer, 6),
                "eer_threshold": round(evaluation.eer.threshold, THRESHOLD_DECIMALS),
                "fta_images": evaluation.fta_images,
                "genuine_fta_pairs": evaluation.genuine_fta,
                "impostor_fta_pairs": evaluation.impostor_fta,
                "operating_points": {
                    fmr_key(p.target_fmr): rounded_for_json(p.to_dict()) for p in evaluation.operating_points
                },
                "official_pairs": dict(evaluation.official),
            }
        )
        body[key] = entry
    doc = {
        "schema": CALIBRATION_SCHEMA,
        "schema_version": CALIBRATION_SCHEMA_VERSION,
        "model": model,
        "date": (date or dt.date.today()).isoformat(),
        "dataset": dataset.describe()
        | {
            "pairs": "all same-person and all different-person pairs of the usable images",
            "fta_rule": (
                "FTA = false non-match for genuine pairs; impostor pairs with an FTA are not compared"
            ),
        },
        "score": dict(SCORE_DEFINITION),
        "pipeline": dict(pipeline),
        "variants": body,
        "default_variant": default_variant,
    }
    if int8_verdict is not None:
        doc["int8_verdict"] = dict(int8_verdict)
    validate_calibration(doc)
    return doc


def validate_calibration(doc: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``doc`` is a calibration document this code can use."""
    missing = [k for k in _REQUIRED_TOP if k not in doc]
    if missing:
        raise ValueError(f"calibration lacks {missing}")
    if doc["schema"] != CALIBRATION_SCHEMA or doc["schema_version"] != CALIBRATION_SCHEMA_VERSION:
        raise ValueError(f"unsupported calibration schema {doc['schema']!r} v{doc['schema_version']!r}")
    if doc["score"].get("name") != SCORE_NAME:
        raise ValueError(f"calibration is on another score scale: {doc['score'].get('name')!r}")
    if not doc["variants"]:
        raise ValueError("calibration has no variants")
    for key, variant in doc["variants"].items():
        lacking = [k for k in _REQUIRED_VARIANT if k not in variant]
        if lacking:
            raise ValueError(f"variant {key} lacks {lacking}")
        if variant_key(variant["precision"], bool(variant["flip"])) != key:
            raise ValueError(f"variant {key} is filed under the wrong key")
        for point_key, point in variant["operating_points"].items():
            lacking = [k for k in _REQUIRED_POINT if k not in point]
            if lacking:
                raise ValueError(f"{key}/{point_key} lacks {lacking}")
            if not isinstance(point["threshold"], (int, float)) or not math.isfinite(point["threshold"]):
                raise ValueError(f"{key}/{point_key} threshold is not a finite number")
    if doc.get("default_variant") not in doc["variants"]:
        raise ValueError(f"default variant {doc.get('default_variant')!r} is not calibrated")


def dump_calibration(doc: Mapping[str, Any]) -> str:
    """Sorted keys, 2-space indent, trailing newline: the same calibration gives the same bytes."""
    validate_calibration(doc)
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_calibration(doc: Mapping[str, Any], path: Path) -> Path:
    text = dump_calibration(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_calibration(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    validate_calibration(doc)
    return doc


INT8_SUFFIX = "_int8"


def thresholds_file(family: str, directory: Path | None = None) -> Path:
    """``<family>.json``: the thresholds of every variant (fp32/int8, with/without flip) of a model."""
    return (directory if directory is not None else CALIBRATION_DIR) / f"{family}.json"


def operating_points_for(
    model_name: str, *, flip: bool | None = None, calibration_dir: Path | None = None
) -> dict[str, Any]:
    """What ``models.tools.build`` puts in a model manifest's ``operating_points``; {} if uncalibrated.

    ``model_name`` is a manifest name: ``dlib_resnet_v1`` (fp32) or ``dlib_resnet_v1_int8``. ``flip``
    picks the flip-augmented or the plain calibration; None takes the file's default variant's
    setting. Top-level keys say what the thresholds hold for (``score`` function, ``flip``,
    ``calibrated_model_sha256``: the matcher refuses a mismatch); one entry per target FMR
    (``fmr_1e-2``, ``fmr_1e-3``, ``fmr_1e-4``) carries the ``threshold`` on the :func:`similarity`
    scale and the rates measured at it.
    """
    if model_name.endswith(INT8_SUFFIX):
        family, precision = model_name[: -len(INT8_SUFFIX)], "int8"
    else:
        family, precision = model_name, "fp32"
    path = thresholds_file(family, calibration_dir)
    if not path.is_file():
        return {}
    doc = read_calibration(path)
    use_flip = bool(doc["variants"][doc["default_variant"]]["flip"] if flip is None else flip)
    variant = doc["variants"].get(variant_key(precision, use_flip))
    if variant is None:
        return {}
    points: dict[str, Any] = {
        "score": doc["score"]["function"],
        "score_definition": doc["score"]["name"],
        "decision": doc["score"]["decision"],
        "flip": use_flip,
        "calibrated_model_sha256": variant["model_sha256"],
        "calibration_file": f"models/calibration/{path.name}",
        "dataset": doc["dataset"]["id"],
        "date": doc["date"],
        "eer": variant["eer"],
    }
    for key, p in variant["operating_points"].items():
        points[key] = {
            "threshold": p["threshold"],
            "fmr": p["fmr"],
            "fnmr": p["fnmr"],
            "n_impostor": p["n_impostor"],
            "n_genuine": p["n_genuine"],
        }
    return points


def calibrated_points(name: str, model_sha256: str) -> dict[str, Any]:
    """The committed operating points of model ``name`` when they were measured on these very bytes."""
    points = operating_points_for(name)
    return points if points.get("calibrated_model_sha256") == model_sha256 else {}
