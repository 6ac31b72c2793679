"""Measuring a face verifier from its pair scores: FMR/FNMR at target FMRs, EER, DET points, and the
one-pipeline summary (:class:`Evaluation`).

The evaluation embeds every image of a labelled set once (:mod:`models.tools.embeddings`) and scores
ALL same-person and ALL different-person pairs (:mod:`models.tools.pair_scores`; about 45 million
on LFW DevTrain). Conventions (ISO/IEC 19795-1 vocabulary):

* The score is :func:`models.scoring.similarity` (higher = more similar) and a comparison matches
  when ``score >= threshold``. The production matcher MUST use the same function, or the calibrated
  thresholds in ``models/calibration/dlib_resnet_v1.json`` mean nothing.
* On LFW three people (Bush, Powell, Blair) own 82% of all same-person pairs, so FNMR over all pairs
  mostly describes them; ``fnmr_person_balanced`` weights every person equally and is the better
  guide to a population of travellers. The official pair list samples people more evenly.
* A failure to acquire (FTA) on either side of a genuine pair counts as a false non-match in FNMR;
  ``fnmr_acquired`` gives the rate over the pairs where both faces were acquired. Impostor pairs with
  an FTA never reach the comparator and can never match, so they are left out of the FMR denominator
  (counted separately): that makes the thresholds slightly stricter than counting them as
  non-matches would.
* The threshold for a target FMR allows at most ``floor(target * n_impostor)`` impostor scores at or
  above it, rounded UP to 6 decimals (so the FMR it gives on this data never exceeds the target).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from models.tools.embeddings import Embeddings
from models.tools.lfw import Dataset, PairList
from models.tools.pair_scores import Scores, score_all_pairs, score_pair_list

TARGET_FMRS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
THRESHOLD_DECIMALS = 6


@dataclass(frozen=True)
class OperatingPoint:
    target_fmr: float
    threshold: float  # on the similarity() scale; match when score >= threshold
    n_impostor: int
    false_matches: int
    fmr: float
    n_genuine: int
    false_non_matches: int  # FTAs included
    fnmr: float
    genuine_fta: int
    fnmr_acquired: float  # over genuine pairs with both faces acquired
    fnmr_person_balanced: float  # each person's FNMR weighted equally (nan if identities unknown)
    resolved: bool  # target * n_impostor >= 1: the data can show an FMR this low at all

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round_up(value: float, decimals: int) -> float:
    scale = 10**decimals
    return math.ceil(value * scale) / scale


def threshold_at_fmr(scores: Scores, target: float, decimals: int = THRESHOLD_DECIMALS) -> float:
    """The lowest threshold (rounded up to ``decimals``) whose FMR on these scores is <= target."""
    if scores.n_impostor == 0:
        raise ValueError("no impostor scores")
    allowed = math.floor(target * scores.n_impostor + 1e-9)
    if allowed >= len(scores.impostor_top):
        if not scores.complete:
            raise ValueError(f"FMR {target:g} lies below the kept impostor tail; keep more scores")
        # every impostor may match: the threshold only has to admit them all
        return _round_down(float(scores.impostor_top[-1]), decimals)
    # The (allowed+1)-th highest impostor score must fall below the threshold.
    barrier = float(scores.impostor_top[allowed])
    threshold = _round_up(float(np.nextafter(barrier, math.inf)), decimals)
    while threshold <= barrier:  # float rounding at a decimal boundary
        threshold = round(threshold + 10**-decimals, decimals)
    return threshold


def _round_down(value: float, decimals: int) -> float:
    scale = 10**decimals
    return math.floor(value * scale) / scale


def operating_point_at(scores: Scores, threshold: float, target: float = math.nan) -> OperatingPoint:
    """FMR and FNMR at a given threshold (e.g. one calibrated elsewhere)."""
    fm = int(scores.false_matches(threshold))
    fnm = int(scores.false_non_matches(threshold))
    acquired_gen = scores.n_genuine - scores.genuine_fta
    fnm_acquired = fnm - scores.genuine_fta
    return OperatingPoint(
        target_fmr=target,
        threshold=float(threshold),
        n_impostor=scores.n_impostor,
        false_matches=fm,
        fmr=fm / scores.n_impostor if scores.n_impostor else math.nan,
        n_genuine=scores.n_genuine,
        false_non_matches=fnm,
        fnmr=fnm / scores.n_genuine if scores.n_genuine else math.nan,
        genuine_fta=scores.genuine_fta,
        fnmr_acquired=fnm_acquired / acquired_gen if acquired_gen else math.nan,
        fnmr_person_balanced=scores.person_balanced_fnmr(threshold),
        resolved=bool(math.isnan(target) or target * scores.n_impostor >= 1),
    )


def operating_point(scores: Scores, target: float) -> OperatingPoint:
    return operating_point_at(scores, threshold_at_fmr(scores, target), target)


@dataclass(frozen=True)
class Eer:
    eer: float
    threshold: float


def equal_error_rate(scores: Scores) -> Eer:
    """Where FMR(t) and FNMR(t) cross, linearly interpolated between neighbouring thresholds.

    Candidate thresholds are every distinct score; FMR falls and FNMR rises with t, so the first
    candidate where FMR <= FNMR brackets the crossing with the one before it.
    """
    finite_gen = scores.genuine[np.isfinite(scores.genuine)]
    candidates = np.unique(np.concatenate([finite_gen, scores.impostor_top]))
    if not scores.complete:
        candidates = candidates[candidates > scores.lowest_exact]
    if not len(candidates):
        raise ValueError("no scores")
    fmr = np.asarray(scores.false_matches(candidates), float) / max(scores.n_impostor, 1)
    fnmr = np.asarray(scores.false_non_matches(candidates), float) / max(scores.n_genuine, 1)
    diff = fmr - fnmr
    cross = np.flatnonzero(diff <= 0)
    if not len(cross):
        raise ValueError("FMR stays above FNMR over the thresholds kept")
    i = int(cross[0])
    if i == 0:
        if not scores.complete:
            raise ValueError("the EER lies below the kept impostor tail; keep more scores")
        return Eer(float((fmr[0] + fnmr[0]) / 2), float(candidates[0]))
    d0, d1 = diff[i - 1], diff[i]
    alpha = d0 / (d0 - d1) if d0 != d1 else 1.0
    eer = fmr[i - 1] + alpha * (fmr[i] - fmr[i - 1])
    threshold = candidates[i - 1] + alpha * (candidates[i] - candidates[i - 1])
    return Eer(float(eer), float(threshold))


def det_points(scores: Scores, max_points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """(FMR, FNMR) along the DET curve, at most ``max_points`` points spread evenly in log FMR."""
    finite_gen = scores.genuine[np.isfinite(scores.genuine)]
    candidates = np.unique(np.concatenate([finite_gen, scores.impostor_top]))
    if not scores.complete:
        candidates = candidates[candidates > scores.lowest_exact]
    fmr = np.asarray(scores.false_matches(candidates), float) / max(scores.n_impostor, 1)
    fnmr = np.asarray(scores.false_non_matches(candidates), float) / max(scores.n_genuine, 1)
    ok = (fmr > 0) & (fnmr > 0)
    fmr, fnmr = fmr[ok], fnmr[ok]
    if len(fmr) > max_points:
        # Along the curve -log FMR rises and log FNMR rises: sample evenly in both so that neither
        # the flat nor the steep parts lose their shape.
        picks = [np.array([0, len(fmr) - 1])]
        for axis in (-np.log10(fmr), np.log10(fnmr)):
            grid = np.linspace(axis[0], axis[-1], max_points // 2)
            picks.append(np.searchsorted(axis, grid).clip(0, len(fmr) - 1))
        pick = np.unique(np.concatenate(picks))
        fmr, fnmr = fmr[pick], fnmr[pick]
    return fmr, fnmr


@dataclass(frozen=True)
class Evaluation:
    """One pipeline on one set: all-pairs operating points, EER, FTA, and the official pair list."""

    name: str
    settings: Mapping[str, Any]
    images: int
    fta_images: int
    operating_points: tuple[OperatingPoint, ...]
    eer: Eer
    n_genuine: int
    n_impostor: int
    genuine_fta: int
    impostor_fta: int
    official: Mapping[str, Any] = field(default_factory=dict)

    def point(self, target: float) -> OperatingPoint:
        for p in self.operating_points:
            if math.isclose(p.target_fmr, target):
                return p
        raise KeyError(target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "settings": dict(self.settings),
            "images": self.images,
            "fta_images": self.fta_images,
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
            "genuine_fta_pairs": self.genuine_fta,
            "impostor_fta_pairs": self.impostor_fta,
            "eer": round(self.eer.eer, 6),
            "eer_threshold": round(self.eer.threshold, THRESHOLD_DECIMALS),
            "operating_points": {
                fmr_key(p.target_fmr): rounded_for_json(p.to_dict()) for p in self.operating_points
            },
            "official_pairs": dict(self.official),
        }


def fmr_key(target: float) -> str:
    return f"fmr_{target:.0e}".replace("e-0", "e-")


def rounded_for_json(d: Mapping[str, Any]) -> dict[str, Any]:
    """Floats to 8 decimals, NaN to null (JSON has no NaN)."""
    return {k: (None if math.isnan(v) else round(v, 8)) if isinstance(v, float) else v for k, v in d.items()}


def evaluate(
    name: str,
    dataset: Dataset,
    embeddings: Embeddings,
    *,
    settings: Mapping[str, Any] | None = None,
    targets: Sequence[float] = TARGET_FMRS,
    pairs: PairList | None = None,
) -> tuple[Evaluation, Scores]:
    """All-pairs operating points for one pipeline, and the official list scored at those thresholds."""
    scores = score_all_pairs(embeddings, dataset.labels, dataset.usable)
    points = tuple(operating_point(scores, t) for t in targets)
    official: dict[str, Any] = {}
    if pairs is not None:
        listed = score_pair_list(embeddings, pairs, dataset.labels)
        official = {
            "pairs": len(pairs.a),
            "genuine": listed.n_genuine,
            "impostor": listed.n_impostor + listed.impostor_fta,
            "touching_label_errors": pairs.touching_errata,
            "genuine_fta_pairs": listed.genuine_fta,
            "impostor_fta_pairs": listed.impostor_fta,
            "eer": round(equal_error_rate(listed).eer, 6) if listed.n_impostor and listed.n_genuine else None,
            # at the thresholds calibrated on all pairs, the figure a kiosk would see
            "at_all_pairs_thresholds": {
                fmr_key(p.target_fmr): rounded_for_json(
                    operating_point_at(listed, p.threshold, p.target_fmr).to_dict()
                    | {"resolved": p.target_fmr * listed.n_impostor >= 1}
                )
                for p in points
            },
            # the list's own thresholds: resolved only where target * pairs >= 1
            "own_thresholds": {
                fmr_key(t): rounded_for_json(operating_point(listed, t).to_dict()) for t in targets
            },
            "accuracy_at_eer_threshold": _accuracy(listed, equal_error_rate(listed).threshold)
            if listed.n_impostor and listed.n_genuine
            else None,
        }
    result = Evaluation(
        name=name,
        settings=dict(settings or {}),
        images=len(dataset),
        fta_images=int((~embeddings.acquired).sum()),
        operating_points=points,
        eer=equal_error_rate(scores),
        n_genuine=scores.n_genuine,
        n_impostor=scores.n_impostor,
        genuine_fta=scores.genuine_fta,
        impostor_fta=scores.impostor_fta,
        official=official,
    )
    return result, scores


def _accuracy(scores: Scores, threshold: float) -> float:
    correct = (scores.n_genuine - int(scores.false_non_matches(threshold))) + (
        scores.n_impostor + scores.impostor_fta - int(scores.false_matches(threshold))
    )
    return round(correct / (scores.n_genuine + scores.n_impostor + scores.impostor_fta), 6)
