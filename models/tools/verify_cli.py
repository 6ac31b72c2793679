"""``python -m models verify``: score image pairs with the production face pipeline.

Reads ``--pairs FILE`` (one ``relpathA<TAB>relpathB`` per line, images under ``--root``; blank lines
are skipped) and prints, per pair and in the same order, ``relpathA<TAB>relpathB<TAB>score<TAB>match``:
the comparison score (:func:`models.scoring.similarity`, higher = more similar) and 1/0 for a
match at the production operating point. A pair with an image that has no usable face (unreadable
file, no face found) prints an empty score and match 0; such images and the number of such pairs go
to stderr. Each distinct image is embedded once.

The images are stills of unknown framing, so the kiosk's capture gates (face size, centring, pose,
exposure, sharpness, one person) do not apply: any face the full detector pyramid finds will do, the
largest and most central one when there are several. Descriptors are the kiosk's own (same chip,
same flip augmentation), so scores are on the scale the kiosk decides on.

Exit status: 0 when every pair was scored or reported, 1 when the models are unusable, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from models.matching import ModelUnavailable
from models.model_files import default_model_dir
from models.onnx_matcher import OnnxFaceMatcher
from models.pipeline import PRECISIONS, PipelineSettings
from models.scoring import similarity

SUMMARY = (
    "Score image pairs with the face pipeline: for each line relpathA<TAB>relpathB of --pairs, print "
    "relpathA<TAB>relpathB<TAB>score<TAB>match, where score compares the two face descriptors "
    "(models.scoring.similarity, 1 - euclidean/2: higher = more similar) and match is 1/0 at the "
    "production operating point; an image without a usable face gives an empty score and match 0."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", type=Path, required=True, help="file of relpathA<TAB>relpathB lines")
    parser.add_argument("--root", type=Path, required=True, help="directory the relative paths are under")
    parser.add_argument("--model-dir", type=Path, default=None, help="models (default: <repo>/var/models)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model (default 2)")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="descriptor ResNet (default fp32)"
    )


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The pairs in file order; ValueError naming the line when one is not two tab-separated paths."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not all(fields):
            raise ValueError(f"{path}:{number}: expected relpathA<TAB>relpathB, got {line!r}")
        pairs.append((fields[0], fields[1]))
    return pairs


def _read_rgb(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def run(args: argparse.Namespace) -> int:
    try:
        pairs = read_pairs(args.pairs)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print("verify: --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        matcher = OnnxFaceMatcher(
            args.model_dir or default_model_dir(),
            threads=args.threads,
            settings=PipelineSettings(precision=args.precision),
        )
    except ModelUnavailable as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 1

    embeddings: dict[str, np.ndarray | None] = {}
    for relpath in dict.fromkeys(name for pair in pairs for name in pair):
        image = _read_rgb(args.root / relpath)
        embedding, reason = (None, "unreadable image") if image is None else matcher.embed_image(image)
        if embedding is None:
            print(f"verify: no usable face in {relpath}: {reason}", file=sys.stderr)
        embeddings[relpath] = embedding

    failed = 0
    for a, b in pairs:
        first, second = embeddings[a], embeddings[b]
        if first is None or second is None:
            failed += 1
            print(f"{a}\t{b}\t\t0")
            continue
        score = float(similarity(first, second))
        print(f"{a}\t{b}\t{score:.6f}\t{int(score >= matcher.threshold)}")
    print(
        f"verify: {failed} of {len(pairs)} pairs without a usable face; "
        f"threshold {matcher.threshold:.4f} ({matcher.threshold_source})",
        file=sys.stderr,
    )
    return 0
