"""The evaluation harness: score, pairs, FMR/FNMR/EER arithmetic, DET plot, calibration files.

Known answers on synthetic score sets; the pair bookkeeping on a tiny fake LFW tree and on the real
DevTrain list (read in place from the shared data folder, never copied).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from models import scoring
from models.tools import embeddings, lfw, metrics, pair_scores, report, thresholds
from tests.lfw import lfw_dir

# --------------------------------------------------------------------------------------------
# The score


def test_similarity_is_one_minus_half_the_euclidean_distance():
    a = np.zeros(128, np.float32)
    b = np.zeros(128, np.float32)
    b[0] = 0.6
    assert scoring.similarity(a, b) == pytest.approx(0.7)  # dlib's 0.6 distance
    assert scoring.similarity(a, a) == 1.0
    assert isinstance(scoring.similarity(a, b), float)
    stacked = scoring.similarity(np.stack([a, b]), np.stack([b, b]))
    np.testing.assert_allclose(stacked, [0.7, 1.0])


def test_pairwise_block_agrees_with_similarity():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.09, (40, 128)).astype(np.float32)  # dlib-like norms (about 1)
    b = rng.normal(0, 0.09, (30, 128)).astype(np.float32)
    block = scoring.pairwise_similarity(a, b)
    exact = scoring.similarity(a[:, None, :], b[None, :, :])
    assert block.dtype == np.float32 and block.shape == (40, 30)
    assert np.abs(block - exact).max() < 2e-6


def test_production_matcher_scores_with_this_function():
    from models import onnx_matcher

    assert onnx_matcher.similarity is scoring.similarity


# --------------------------------------------------------------------------------------------
# FMR / FNMR / EER on synthetic scores with known answers


def test_threshold_and_rates_at_target_fmr():
    impostor = np.arange(1000) / 1000  # 0.000 .. 0.999
    genuine = [0.5, 0.98, 0.99, 0.995, 1.0]
    scores = pair_scores.Scores.from_arrays(genuine, impostor)
    p = metrics.operating_point(scores, 1e-2)
    # 10 impostors may match: 0.990 .. 0.999; the 11th highest (0.989) must not
    assert p.threshold == pytest.approx(0.989001)
    assert (p.false_matches, p.n_impostor, p.fmr) == (10, 1000, 0.01)
    assert (p.false_non_matches, p.fnmr) == (2, 0.4)
    q = metrics.operating_point(scores, 1e-3)
    assert q.threshold == pytest.approx(0.998001)
    assert (q.false_matches, q.fmr) == (1, 0.001)
    assert (q.false_non_matches, q.fnmr) == (4, 0.8)
    r = metrics.operating_point(scores, 1e-4)  # no impostor may match: above the highest
    assert r.threshold > 0.999 and r.false_matches == 0
    assert not r.resolved and q.resolved  # 1e-4 * 1000 pairs < 1


def test_ties_at_the_threshold_never_exceed_the_target():
    impostor = [0.9] * 5 + [0.1] * 995
    scores = pair_scores.Scores.from_arrays([0.95, 0.5], impostor)
    p = metrics.operating_point(scores, 3e-3)  # 3 allowed, but the 5 tied scores go together
    assert p.false_matches == 0 and p.fmr <= 3e-3
    assert p.threshold > 0.9


def test_failures_to_acquire():
    # genuine FTA is a false non-match; an impostor FTA is never compared, never a match
    scores = pair_scores.Scores.from_arrays([-np.inf, 0.9, 0.8, 0.7], [0.1, 0.2, -np.inf, 0.3], genuine_fta=1)
    assert scores.n_impostor == 3 and scores.impostor_fta == 1
    p = metrics.operating_point_at(scores, 0.75)
    assert p.false_non_matches == 2 and p.fnmr == 0.5  # the FTA and 0.7
    assert p.fnmr_acquired == pytest.approx(1 / 3)
    assert p.false_matches == 0


def test_person_balanced_fnmr_weights_people_not_pairs():
    genuine = np.array([0.1] + [0.9] * 100)  # person 1's one pair fails, person 0's hundred match
    labels = np.array([1] + [0] * 100)
    scores = pair_scores.Scores(genuine, np.array([0.5, 0.4]), 2, genuine_labels=labels)
    p = metrics.operating_point_at(scores, 0.6)
    assert p.fnmr == pytest.approx(1 / 101)
    assert p.fnmr_person_balanced == pytest.approx(0.5)


def test_eer_known_answers():
    exact = metrics.equal_error_rate(
        pair_scores.Scores.from_arrays([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.55])
    )
    assert exact.eer == pytest.approx(0.25)
    assert exact.threshold == pytest.approx(0.55)
    # two uniform distributions overlapping on [0.5, 1): FMR(t) = 1 - t, FNMR(t) = t - 0.5
    grid = (np.arange(20000) + 0.5) / 20000
    smooth = metrics.equal_error_rate(pair_scores.Scores.from_arrays(grid + 0.5, grid))
    assert smooth.eer == pytest.approx(0.25, abs=2e-4)
    assert smooth.threshold == pytest.approx(0.75, abs=2e-4)
    perfect = metrics.equal_error_rate(pair_scores.Scores.from_arrays([0.9, 0.95], [0.1, 0.2]))
    assert perfect.eer == 0.0


def test_det_points_are_monotone_and_bounded():
    rng = np.random.default_rng(3)
    scores = pair_scores.Scores.from_arrays(rng.normal(0.8, 0.05, 3000), rng.normal(0.5, 0.07, 60000))
    fmr, fnmr = metrics.det_points(scores, max_points=300)
    assert 10 < len(fmr) <= 302
    assert np.all(np.diff(fmr) <= 0) and np.all(np.diff(fnmr) >= 0)
    assert np.all((fmr > 0) & (fmr <= 1) & (fnmr > 0) & (fnmr <= 1))


# --------------------------------------------------------------------------------------------
# Pairs


def test_pair_counts_exclude_unusable_images():
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    usable = np.array([True, True, False, True, True, True, True, True])
    ia, ib = lfw.genuine_pairs(labels, usable)
    assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 1), (3, 4), (6, 7)]
    # usable: 7 images -> 21 pairs, 3 genuine
    assert lfw.impostor_pair_count(labels, usable) == 18
    assert lfw.impostor_pair_count(labels, np.ones(8, bool)) == 28 - 5


def _synthetic_set(n_people: int = 60, seed: int = 4) -> tuple[embeddings.Embeddings, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, n_people)
    labels = np.repeat(np.arange(n_people), counts)
    centres = rng.normal(0, 0.09, (n_people, 128))
    vectors = (centres[labels] + rng.normal(0, 0.03, (len(labels), 128))).astype(np.float32)
    acquired = rng.random(len(labels)) > 0.05
    vectors[~acquired] = 0
    usable = rng.random(len(labels)) > 0.03
    return embeddings.Embeddings(vectors, acquired), labels, usable


def _brute_force(emb: embeddings.Embeddings, labels: np.ndarray, usable: np.ndarray) -> pair_scores.Scores:
    gen, imp, gen_fta, imp_fta = [], [], 0, 0
    n = len(labels)
    for i in range(n):
        for j in range(i + 1, n):
            if not (usable[i] and usable[j]):
                continue
            both = emb.acquired[i] and emb.acquired[j]
            s = scoring.similarity(emb.vectors[i], emb.vectors[j]) if both else -np.inf
            if labels[i] == labels[j]:
                gen.append(s)
                gen_fta += not both
            elif both:
                imp.append(s)
            else:
                imp_fta += 1
    return pair_scores.Scores(np.sort(gen), np.sort(imp)[::-1], len(imp), gen_fta, imp_fta)


def test_all_pairs_scoring_matches_brute_force_with_a_kept_tail():
    emb, labels, usable = _synthetic_set()
    truth = _brute_force(emb, labels, usable)
    got = pair_scores.score_all_pairs(emb, labels, usable, keep_fraction=0.05, min_keep=10, block_rows=17)
    assert (got.n_impostor, got.genuine_fta, got.impostor_fta) == (
        truth.n_impostor,
        truth.genuine_fta,
        truth.impostor_fta,
    )
    np.testing.assert_allclose(got.genuine, truth.genuine, atol=1e-9)
    keep = math.ceil(0.05 * truth.n_impostor)
    assert not got.complete and len(got.impostor_top) == keep
    np.testing.assert_allclose(got.impostor_top, truth.impostor_top[:keep], atol=3e-6)
    for target in (1e-2, 1e-3):
        assert (
            metrics.operating_point(got, target).false_matches
            == metrics.operating_point(truth, target).false_matches
        )
        assert metrics.threshold_at_fmr(got, target) == pytest.approx(
            metrics.threshold_at_fmr(truth, target), abs=1e-5
        )
    with pytest.raises(ValueError, match="kept impostor tail"):
        metrics.threshold_at_fmr(got, 0.2)
    everything = pair_scores.score_all_pairs(emb, labels, usable, keep_fraction=1.0, min_keep=1)
    assert everything.complete
    assert metrics.equal_error_rate(everything).eer == pytest.approx(
        metrics.equal_error_rate(truth).eer, abs=1e-4
    )


def _fake_lfw(root: Path, people: dict[str, int], pairs: list[str]) -> Path:
    tile = np.full((8, 8, 3), 128, np.uint8)
    for person, count in people.items():
        (root / "images" / person).mkdir(parents=True)
        for k in range(1, count + 1):
            cv2.imwrite(str(root / "images" / person / f"{person}_{k:04d}.jpg"), tile)
    (root / "pairsDevTrain.txt").write_text("\n".join([str(len(pairs)), *pairs]) + "\n")
    return root


def test_fake_lfw_excludes_label_errors_and_merges_one_person_under_two_names(tmp_path: Path):
    root = _fake_lfw(
        tmp_path / "lfw",
        {"Anja_Paerson": 2, "Bart_Hendricks": 1, "Ricky_Ray": 2, "Nan_Wang": 2, "Wang_Nan": 1, "Zed_Z": 3},
        ["Zed_Z\t1\t2", "Anja_Paerson\t1\t2", "Zed_Z\t1\tNan_Wang\t1"],
    )
    ds = lfw.load_lfw(root)
    assert len(ds) == 11
    assert set(ds.excluded) == {"Anja_Paerson_0001", "Bart_Hendricks_0001", "Ricky_Ray_0001"}
    assert ds.merged == (("Wang_Nan", "Nan_Wang"),)
    index = {n: i for i, n in enumerate(ds.names)}
    assert ds.labels[index["Wang_Nan_0001"]] == ds.labels[index["Nan_Wang_0002"]]
    ia, _ = lfw.genuine_pairs(ds.labels, ds.usable)
    # Nan_Wang/Wang_Nan: 3 images -> 3 pairs; Zed_Z: 3; Ricky_Ray_0002 and Anja_Paerson_0002 alone
    assert len(ia) == 6
    usable = int(ds.usable.sum())
    assert usable == 8
    assert lfw.impostor_pair_count(ds.labels, ds.usable) == usable * (usable - 1) // 2 - 6
    pairs = lfw.official_pairs(ds)
    assert pairs.same.tolist() == [True, True, False]
    assert pairs.touching_errata == 1  # Anja_Paerson_0001: kept, as the official list has it, but counted
    assert ds.subset(4).names == ds.names[:4]


@pytest.mark.needs_lfw
def test_real_devtrain_pairs():
    ds = lfw.load_lfw(lfw_dir().parent)
    assert len(ds) == 9525
    assert len(np.unique(ds.labels)) == 4038 - 2  # two people were filed under two names
    assert set(ds.excluded) == {
        "Bart_Hendricks_0001",
        "Ricky_Ray_0001",
        "Raul_Ibanez_0001",
        "Emmy_Rossum_0001",
        "Recep_Tayyip_Erdogan_0004",
        "Anja_Paerson_0001",
        "Michael_Schumacher_0008",
        "Andrew_Gilligan_0001",
        "Eric_Christian_Olsen_0001",
    }
    ia, _ = lfw.genuine_pairs(ds.labels, ds.usable)
    n = int(ds.usable.sum())
    assert n == 9516
    assert lfw.impostor_pair_count(ds.labels, ds.usable) + len(ia) == n * (n - 1) // 2
    # 217,637 same-name pairs in peopleDevTrain, minus those through the two excluded images of people
    # with more photos (Erdogan 30 -> 29 pairs, Schumacher 18 -> 17), plus the merged names' cross
    # pairs (Wang_Nan 1 x Nan_Wang 4, John_Gruden 1 x Jon_Gruden 7)
    assert len(ia) == 217_637 - 29 - 17 + 4 + 7
    pairs = lfw.official_pairs(ds)
    assert len(pairs.a) == 2200 and int(pairs.same.sum()) == 1100


# --------------------------------------------------------------------------------------------
# Embedding cache


def test_embed_images_caches_and_resumes(tmp_path: Path):
    root = _fake_lfw(tmp_path / "lfw", {"A_A": 2, "B_B": 2, "C_C": 1}, [])
    ds = lfw.load_lfw(root)
    calls: list[int] = []

    def embed(rgb: np.ndarray) -> np.ndarray | None:
        calls.append(1)
        return None if len(calls) == 2 else np.full(128, len(calls), np.float32)

    cache = tmp_path / "cache.npz"
    first = embeddings.embed_images(ds.subset(3), embed, cache)
    assert len(calls) == 3 and first.fta_count == 1
    full = embeddings.embed_images(ds, embed, cache)  # only the last two images are new
    assert len(calls) == 5
    np.testing.assert_array_equal(full.vectors[:3], first.vectors)
    again = embeddings.embed_images(ds.subset(2), embed, cache)  # a subset run keeps the full cache
    assert len(calls) == 5
    assert embeddings.embed_images(ds, embed, cache).acquired.tolist() == full.acquired.tolist()
    np.testing.assert_array_equal(again.vectors, full.vectors[:2])


# --------------------------------------------------------------------------------------------
# DET plot


def test_det_png_is_written(tmp_path: Path):
    rng = np.random.default_rng(5)
    curves = []
    for i, shift in enumerate((0.3, 0.25)):
        scores = pair_scores.Scores.from_arrays(
            rng.normal(0.5 + shift, 0.05, 2000), rng.normal(0.5, 0.06, 100000)
        )
        curves.append(report.DetCurve(f"pipeline {i}", *metrics.det_points(scores), report.palette(i)))
    path = report.draw_det(curves, tmp_path / "det.png", title="test")
    assert path.stat().st_size > 5000
    image = cv2.imread(str(path))
    assert image.shape == (720, 960, 3)
    for curve in curves:  # each curve's colour is on the plot
        assert (np.abs(image.astype(int) - curve.colour_bgr).sum(axis=2) < 30).sum() > 200


# --------------------------------------------------------------------------------------------
# Calibration files


def _calibration_doc() -> dict:
    emb, labels, usable = _synthetic_set(seed=6)
    names = tuple(f"P{label}_{i:04d}" for i, label in enumerate(labels))
    ds = lfw.Dataset(
        "synthetic", Path("/nowhere"), names, tuple(map(Path, names)), labels, usable, (), (), "x" * 64
    )
    variants = {}
    for precision in ("fp32", "int8"):
        for flip in (True, False):
            result, _ = metrics.evaluate(f"ours {precision}", ds, emb)
            info = {
                "precision": precision,
                "flip": flip,
                "model_file": f"{precision}.onnx",
                "model_sha256": "ab" * 32,
            }
            variants[thresholds.variant_key(precision, flip)] = (result, info)
    return thresholds.build_calibration(
        "dlib_resnet_v1",
        ds,
        {"detector": "test"},
        variants,
        default_variant="fp32_flip",
        int8_verdict={"int8_default": False},
    )


def test_calibration_round_trip_and_manifest_points(tmp_path: Path):
    doc = _calibration_doc()
    path = thresholds.write_calibration(doc, tmp_path / "cal" / "dlib_resnet_v1.json")
    text = path.read_text()
    assert thresholds.read_calibration(path) == json.loads(text)
    assert thresholds.dump_calibration(thresholds.read_calibration(path)) == text  # stable bytes
    assert doc["score"]["name"] == scoring.SCORE_NAME
    points = thresholds.operating_points_for("dlib_resnet_v1", calibration_dir=path.parent)
    assert {"fmr_1e-2", "fmr_1e-3", "fmr_1e-4"} <= set(points)
    assert points["score"] == "models.scoring.similarity" and points["flip"] is True
    assert points["calibrated_model_sha256"] == "ab" * 32
    variant = doc["variants"]["fp32_flip"]["operating_points"]["fmr_1e-3"]
    assert points["fmr_1e-3"]["threshold"] == variant["threshold"]
    assert (
        thresholds.operating_points_for("dlib_resnet_v1", flip=False, calibration_dir=path.parent)["flip"]
        is False
    )
    int8 = thresholds.operating_points_for("dlib_resnet_v1_int8", calibration_dir=path.parent)
    assert (
        int8["fmr_1e-2"]["threshold"]
        == doc["variants"]["int8_flip"]["operating_points"]["fmr_1e-2"]["threshold"]
    )
    assert thresholds.operating_points_for("other_model", calibration_dir=path.parent) == {}


def test_calibration_schema_is_enforced():
    doc = _calibration_doc()
    for broken in (
        {k: v for k, v in doc.items() if k != "variants"},
        doc | {"score": doc["score"] | {"name": "1 - euclidean"}},
        doc | {"default_variant": "int4"},
        doc | {"schema_version": 2},
    ):
        with pytest.raises(ValueError):
            thresholds.validate_calibration(broken)
    bad_point = json.loads(json.dumps(doc))
    bad_point["variants"]["fp32_flip"]["operating_points"]["fmr_1e-3"].pop("threshold")
    with pytest.raises(ValueError):
        thresholds.validate_calibration(bad_point)


def test_production_matcher_accepts_the_manifest_points(tmp_path: Path):
    from models.manifest import Manifest, Source
    from models.matching import ModelUnavailable
    from models.onnx_matcher import decision_threshold

    doc = _calibration_doc()
    path = thresholds.write_calibration(doc, tmp_path / "cal" / "dlib_resnet_v1.json")
    points = thresholds.operating_points_for("dlib_resnet_v1", calibration_dir=path.parent)
    manifest = Manifest(
        name="dlib_resnet_v1",
        file="f.onnx",
        sha256="ab" * 32,  # the sha the calibration names
        size_bytes=1,
        format="onnx",
        source=Source("p", "1", "f", "0" * 64),
        licence="CC0-1.0",
        licence_note="",
        training_data="",
        input={},
        output={"upstream_threshold": 0.6},
        converter={},
        operating_points=points,
    )
    threshold, _ = decision_threshold(manifest, "fmr_1e-3", True)
    with pytest.raises(ModelUnavailable):  # calibrated with flip: refused for a pipeline without it
        decision_threshold(manifest, "fmr_1e-3", False)
    assert threshold == points["fmr_1e-3"]["threshold"]


def test_committed_calibration_is_valid():
    files = [thresholds.thresholds_file("dlib_resnet_v1")]
    assert files[0].is_file(), "models/calibration/ holds no thresholds (run python -m models calibrate)"
    for path in files:
        doc = thresholds.read_calibration(path)
        assert doc["dataset"]["images"] == 9525  # a full run, not a --limit one
        for variant in doc["variants"].values():
            for key in ("fmr_1e-2", "fmr_1e-3", "fmr_1e-4"):
                point = variant["operating_points"][key]
                assert point["fmr"] <= point["target_fmr"]
                assert point["n_impostor"] > 40_000_000
    assert thresholds.operating_points_for("dlib_resnet_v1")["fmr_1e-3"]["threshold"] > 0.5
