"""What a converted model is, where it came from, and the check that it is still that model.

Every model file ``<name>.onnx`` / ``<name>.npz`` has a ``<name>.manifest.json`` beside it: the file's
sha256, the upstream file it was converted from (package, version, file name, sha256), the licence
and training-data provenance, the input and output contract, and the calibrated operating points.
:func:`load_verified` is the only way run-time code should open a model: it refuses (with
:class:`~models.matching.ModelUnavailable`) a missing file, a file whose bytes changed, and a model
that is not one of the conversions this code knows.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.matching import ModelUnavailable

SCHEMA_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"

# The upstream files this build knows how to convert, pinned by content. The 68-point landmark
# model in the same package is deliberately absent: its training data (iBUG 300-W) is licensed for
# non-commercial use only, so it must never be converted or shipped.
KNOWN_SOURCES: dict[str, dict[str, str]] = {
    "dlib_resnet_v1": {
        "file": "dlib_face_recognition_resnet_model_v1.dat",
        "sha256": "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    },
    "dlib_mmod_detector": {
        "file": "mmod_human_face_detector.dat",
        "sha256": "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
    },
    "dlib_landmarks_5": {
        "file": "shape_predictor_5_face_landmarks.dat",
        "sha256": "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    },
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    file: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    name: str
    file: str  # the model file's name, beside the manifest
    sha256: str
    size_bytes: int
    format: str  # "onnx" or "npz"
    source: Source
    licence: str
    licence_note: str
    training_data: str
    input: dict[str, Any]
    output: dict[str, Any]
    converter: dict[str, Any]
    operating_points: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        """Sorted, indented, newline-terminated: the same manifest always gives the same bytes."""
        return json.dumps(asdict(self), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported manifest schema {data.get('schema_version')!r}")
        fields = dict(data)
        fields["source"] = Source(**fields["source"])
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls.from_dict(json.loads(text))


def manifest_path_for(model_path: Path) -> Path:
    return model_path.with_name(model_path.name.rsplit(".", 1)[0] + MANIFEST_SUFFIX)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step: a reader sees the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: Path) -> Manifest:
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelUnavailable(f"model manifest {path} is unreadable: {exc}") from exc


def load_verified(path: str | Path) -> tuple[bytes, Manifest]:
    """The model's bytes and manifest, after checking both; raises ModelUnavailable otherwise.

    ``path`` is the model file or its manifest. The bytes returned are the ones that were hashed,
    so hand them straight to the runtime rather than reopening the file.
    """
    given = Path(path)
    if given.name.endswith(MANIFEST_SUFFIX):
        manifest_file = given
        model_file = None
    else:
        manifest_file = manifest_path_for(given)
        model_file = given
    if not manifest_file.is_file():
        missing = model_file if model_file is not None and not model_file.exists() else manifest_file
        raise ModelUnavailable(f"face model missing: {missing} (run `python -m models build`)")
    manifest = read_manifest(manifest_file)
    known = KNOWN_SOURCES.get(manifest.name)
    if known is None or known["sha256"] != manifest.source.sha256 or known["file"] != manifest.source.file:
        raise ModelUnavailable(
            f"unknown face model {manifest.name!r} from {manifest.source.file} "
            f"({manifest.source.sha256[:12]}…): not a conversion this build knows"
        )
    expected_file = manifest_file.with_name(manifest.file)
    if model_file is not None and model_file.name != manifest.file:
        raise ModelUnavailable(f"manifest {manifest_file} describes {manifest.file}, not {model_file.name}")
    try:
        data = expected_file.read_bytes()
    except OSError as exc:
        raise ModelUnavailable(f"face model missing: {expected_file} ({exc.strerror or exc})") from exc
    actual = sha256_bytes(data)
    if actual != manifest.sha256 or len(data) != manifest.size_bytes:
        raise ModelUnavailable(
            f"face model {expected_file} was modified: sha256 {actual[:12]}… does not match "
            f"its manifest ({manifest.sha256[:12]}…); rebuild it with `python -m models build --force`"
        )
    return data, manifest
