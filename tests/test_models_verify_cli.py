"""``python -m models verify``: the pair-scoring contract on LFW photos (read in place) and a grey image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.__main__ import main
from models.onnx_matcher import OnnxFaceMatcher
from models.tools import verify_cli
from tests.lfw import lfw_dir
from tests.test_face_pipeline import GENUINE, OTHER, matcher
from tests.test_models_convert import ROOT, built_models

PAIRS = [
    (f"lfw/{GENUINE[0]}", f"lfw/{GENUINE[1]}"),  # same person
    (f"lfw/{OTHER[0]}", f"lfw/{OTHER[1]}"),  # same person
    (f"lfw/{GENUINE[0]}", f"lfw/{OTHER[0]}"),  # different people
    (f"lfw/{GENUINE[1]}", "grey.png"),  # no face on one side
]


@pytest.fixture
def pair_root(tmp_path: Path) -> Path:
    """A root holding the LFW folder (linked, never copied) and a faceless grey image."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "lfw").symlink_to(lfw_dir(), target_is_directory=True)
    cv2.imwrite(str(root / "grey.png"), np.full((250, 250, 3), 128, np.uint8))
    (tmp_path / "pairs.txt").write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS))
    return root


def verify(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "models", "verify", "--model-dir", str(built_models()), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.needs_lfw
def test_scores_pairs_in_order_with_empty_scores_for_faceless_images(pair_root):
    pairs_file = pair_root.parent / "pairs.txt"
    first = verify("--pairs", str(pairs_file), "--root", str(pair_root))
    assert first.returncode == 0, first.stderr
    rows = [line.split("\t") for line in first.stdout.splitlines()]
    assert [tuple(row[:2]) for row in rows] == PAIRS
    scores = [float(row[2]) for row in rows[:3]]
    assert [row[3] for row in rows] == ["1", "1", "0", "0"]
    assert min(scores[:2]) > matcher().threshold > scores[2]  # higher = more similar
    assert rows[3][2:] == ["", "0"]
    assert "1 of 4 pairs without a usable face" in first.stderr and "grey.png" in first.stderr

    again = verify("--pairs", str(pairs_file), "--root", str(pair_root), "--threads", "2")
    assert again.stdout == first.stdout  # deterministic


@pytest.mark.needs_lfw
def test_each_distinct_image_is_embedded_once(pair_root, monkeypatch, capsys):
    embedded: list[int] = []
    original = OnnxFaceMatcher.embed_image

    def counting(self: OnnxFaceMatcher, rgb: np.ndarray) -> tuple[np.ndarray | None, str]:
        embedded.append(rgb.shape[0])
        return original(self, rgb)

    monkeypatch.setattr(OnnxFaceMatcher, "embed_image", counting)
    args = ["verify", "--pairs", str(pair_root.parent / "pairs.txt"), "--root", str(pair_root)]
    assert main([*args, "--model-dir", str(built_models()), "--threads", "1"]) == 0
    assert len(embedded) == len({name for pair in PAIRS for name in pair}) == 5
    assert len(capsys.readouterr().out.splitlines()) == len(PAIRS)


def test_unreadable_images_are_reported_like_faceless_ones(pair_root, capsys):
    (pair_root / "broken.jpg").write_bytes(b"not a jpeg")
    pairs = pair_root.parent / "broken.txt"
    pairs.write_text(f"lfw/{GENUINE[0]}\tbroken.jpg\nlfw/{GENUINE[0]}\tmissing.jpg\n")
    args = ["verify", "--pairs", str(pairs), "--root", str(pair_root), "--model-dir", str(built_models())]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"lfw/{GENUINE[0]}\tbroken.jpg\t\t0", f"lfw/{GENUINE[0]}\tmissing.jpg\t\t0"]
    assert "unreadable image" in err and "2 of 2 pairs" in err


def test_malformed_pair_lines_and_missing_files_are_input_errors(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("a.jpg\tb.jpg\n\nonly-one-path.jpg\n")
    assert main(["verify", "--pairs", str(bad), "--root", str(tmp_path)]) == 2
    assert f"{bad}:3" in capsys.readouterr().err
    assert main(["verify", "--pairs", str(tmp_path / "none.txt"), "--root", str(tmp_path)]) == 2
    with pytest.raises(ValueError, match=":1:"):
        verify_cli.read_pairs(_write(tmp_path / "empty-field.txt", "\tb.jpg\n"))


def test_unusable_models_exit_1(tmp_path, capsys):
    pairs = _write(tmp_path / "pairs.txt", "a.jpg\tb.jpg\n")
    args = ["verify", "--pairs", str(pairs), "--root", str(tmp_path), "--model-dir", str(tmp_path / "none")]
    assert main(args) == 1
    assert "missing" in capsys.readouterr().err


def test_help_states_the_score_direction():
    result = verify("--help")
    assert result.returncode == 0 and "higher = more similar" in result.stdout


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
