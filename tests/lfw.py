"""Where the tests find the LFW dev set: read in place, never copied into the repository.

``GERBANG_LFW_DIR`` names the set's root (``images/<Person>/<Person>_NNNN.jpg`` and
``pairsDevTrain.txt``), as for ``python -m models bench --data``; by default it sits next to the
repository in ``../shared``. Tests that need it carry the ``needs_lfw`` marker and are skipped,
all for the one reason below, on a machine without it.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LFW_ROOT = Path(os.environ.get("GERBANG_LFW_DIR") or ROOT.parent / "shared" / "data" / "lfw-devtrain")
SKIP_REASON = "LFW dev set not found at ../shared/data/lfw-devtrain (GERBANG_LFW_DIR)"


def available() -> bool:
    return (LFW_ROOT / "images").is_dir()


def lfw_dir() -> Path:
    """The images folder; only reached from tests marked ``needs_lfw``."""
    return LFW_ROOT / "images"
