"""The kiosk's face code never pulls in the offline tools: no ``models.tools``, no ``onnx`` package,
no dlib, no plotting, no LFW loading. A fresh interpreter imports every run-time module of
``models`` (and the kiosk's composition root) and the forbidden ones must still be absent."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import models

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_PREFIXES = ("models.tools", "onnx.", "dlib", "torch", "matplotlib")
FORBIDDEN = ("onnx",)


def runtime_modules() -> list[str]:
    """Every module directly in ``models/`` (the tools are a sub-package, the CLI is ``__main__``)."""
    return sorted(
        f"models.{info.name}"
        for info in pkgutil.iter_modules(models.__path__)
        if not info.ispkg and info.name != "__main__"
    )


def test_runtime_modules_are_the_kiosk_face_code():
    names = set(runtime_modules())
    assert {"models.onnx_matcher", "models.pipeline", "models.model_files", "models.scoring"} <= names
    assert not names & {"models.build", "models.quantize", "models.evaluation", "models.bench"}


def test_the_runtime_imports_no_offline_tool():
    code = (
        "import sys\n"
        f"import {', '.join(runtime_modules())}, kiosk.app\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "models.onnx_matcher" in loaded
    bad = [m for m in loaded if m in FORBIDDEN or m.startswith(FORBIDDEN_PREFIXES)]
    assert not bad, bad
