"""gimg.correction: Rogan-Gladen values, evaluation files, and bootstrap intervals that cover the truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gimg.correction import (
    Evaluation,
    compare_with_census,
    default_evaluation_path,
    draw_error_rates,
    estimate_term,
    interval,
    load_evaluation,
    resample_shares,
    rogan_gladen,
    write_evaluation,
)
from gimg.errors import GimgError, MissingInputError

EVALUATION = Evaluation(model="onnx:gender-v1", model_version="test", dataset="simulated", cutoff=0.5,
                        tp=90, fp=20, tn=80, fn=10, provenance="made up for a test")


@pytest.mark.parametrize(
    ("raw", "sensitivity", "specificity", "expected"),
    [
        (0.14, 0.95, 0.95, 0.1),  # the example: a true 10% observed as 14%
        (0.5, 0.9, 0.8, 0.3 / 0.7),
        (0.3, 1.0, 1.0, 0.3),  # a perfect classifier changes nothing
        (0.02, 0.95, 0.9, -0.08 / 0.85),  # below what the false positives alone explain: negative, to be clipped
        (1.0, 0.9, 0.8, 0.8 / 0.7),
    ],
)
def test_rogan_gladen_exact(raw, sensitivity, specificity, expected):
    assert rogan_gladen(raw, sensitivity, specificity) == pytest.approx(expected, abs=1e-12)


def test_rogan_gladen_inverts_the_misclassification():
    truth = np.linspace(0, 1, 11)
    observed = truth * 0.93 + (1 - truth) * (1 - 0.88)
    np.testing.assert_allclose(rogan_gladen(observed, 0.93, 0.88), truth, atol=1e-12)


def test_evaluation_round_trips(tmp_path):
    write_evaluation(EVALUATION, tmp_path / "evaluation.json")
    data = json.loads((tmp_path / "evaluation.json").read_text())
    assert data["counts"] == {"n": 200, "tp": 90, "fp": 20, "tn": 80, "fn": 10}
    assert (data["sensitivity"], data["specificity"], data["positive"]) == (0.9, 0.8, "female")
    assert load_evaluation(tmp_path / "evaluation.json") == EVALUATION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("provenance"), "lacks 'provenance'"),
        (lambda d: d["counts"].update(n=7), "add up to n"),
        (lambda d: d.update(sensitivity=0.5), "does not match its counts"),
        (lambda d: d["counts"].update(tp=10, fn=90, n=200), "no better than chance"),
        (lambda d: d.update(positive="male"), "'female'"),
        (lambda d: d["counts"].update(tn=0, fp=0, n=100), "include women and men"),
    ],
)
def test_bad_evaluation_files(tmp_path, change, message):
    data = EVALUATION.to_json()
    data.pop("sensitivity")
    change(data)
    (tmp_path / "evaluation.json").write_text(json.dumps(data))
    with pytest.raises(GimgError, match=message) as error:
        load_evaluation(tmp_path / "evaluation.json")
    assert "\n" not in str(error.value)


def test_missing_evaluation_file(tmp_path):
    with pytest.raises(MissingInputError, match="--evaluation"):
        load_evaluation(tmp_path / "absent.json")


def test_shipped_evaluation_of_the_default_model():
    path = default_evaluation_path("onnx:gender-v1")
    assert path.name == "evaluation-onnx.json" and path.is_file()
    evaluation = load_evaluation(path)
    assert evaluation.model == "onnx:gender-v1"
    assert evaluation.n >= 1000 and evaluation.cutoff == 0.5
    assert 0.8 < evaluation.sensitivity < 1 and 0.8 < evaluation.specificity < 1
    assert "UTKFace" in evaluation.dataset and "gimg evaluate" in evaluation.provenance


def test_error_rates_follow_their_posteriors():
    sensitivity, specificity = draw_error_rates(EVALUATION, 20000, np.random.default_rng(1))
    assert sensitivity.mean() == pytest.approx(91 / 102, abs=0.002)  # Beta(tp + 1, fn + 1)
    assert specificity.mean() == pytest.approx(81 / 102, abs=0.002)
    assert sensitivity.std() == pytest.approx(math.sqrt(91 * 11 / (102**2 * 103)), rel=0.05)
    ones = draw_error_rates(None, 5, np.random.default_rng(1))
    assert all((rates == 1).all() for rates in ones)


def test_resampling_images_keeps_their_faces_together():
    women, faces = np.array([2.0, 0.0]), np.array([2.0, 2.0])  # two images of two faces each
    shares = resample_shares(women, faces, 4000, np.random.default_rng(2))
    assert set(np.unique(shares)) == {0.0, 0.5, 1.0}  # never 0.25 or 0.75: faces are not resampled alone
    assert shares.mean() == pytest.approx(0.5, abs=0.03)
    assert np.isnan(resample_shares(np.array([]), np.array([]), 3, np.random.default_rng(2))).all()


def test_clipping_is_flagged():
    rng = np.random.default_rng(3)
    rates = draw_error_rates(EVALUATION, 500, rng)
    high, _ = estimate_term(np.r_[np.ones(29), 0.0], np.ones(30), *rates, (0.9, 0.8), rng)
    assert high.share == 29 / 30 and high.corrected == 1 and high.clipped
    assert high.corrected_high == 1 and 0.5 < high.corrected_low < 1
    middle, _ = estimate_term(np.array([1.0] * 10 + [0.0] * 10), np.ones(20), *rates, (0.9, 0.8), rng)
    assert middle.corrected == pytest.approx(0.3 / 0.7) and not middle.clipped
    assert middle.corrected_low < middle.corrected < middle.corrected_high
    empty, replicates = estimate_term(np.array([]), np.array([]), *rates, (0.9, 0.8), rng)
    assert math.isnan(empty.corrected) and np.isnan(replicates).all()


def _coverage(truth: float, *, carry_rates: bool, evaluation_faces: int, images: int, repeats: int, seed: int):
    """Share of simulated studies whose 95% interval covers the true share of women."""
    rng = np.random.default_rng(seed)
    sensitivity, specificity, resamples = 0.9, 0.85, 1000
    covered = 0
    for _ in range(repeats):
        tp, tn = rng.binomial(evaluation_faces, sensitivity), rng.binomial(evaluation_faces, specificity)
        evaluation = Evaluation("m", "v", "d", 0.5, tp, evaluation_faces - tn, tn, evaluation_faces - tp, "p")
        female = rng.random(images) < truth
        called = np.where(female, rng.random(images) < sensitivity, rng.random(images) < 1 - specificity)
        if carry_rates:
            rates = draw_error_rates(evaluation, resamples, rng)
        else:
            rates = (np.full(resamples, evaluation.sensitivity), np.full(resamples, evaluation.specificity))
        point = (evaluation.sensitivity, evaluation.specificity)
        estimate, _ = estimate_term(called.astype(float), np.ones(images), *rates, point, rng)
        covered += estimate.corrected_low <= truth <= estimate.corrected_high
    return covered / repeats


@pytest.mark.parametrize("truth", [0.2, 0.5, 0.8])
def test_intervals_cover_the_truth(truth):
    assert 0.90 <= _coverage(truth, carry_rates=True, evaluation_faces=300, images=150, repeats=300, seed=4) <= 0.99


def test_intervals_must_carry_the_error_rates():
    # Many images but a small evaluation: the error rates dominate the uncertainty.
    fixed = _coverage(0.2, carry_rates=False, evaluation_faces=40, images=1000, repeats=120, seed=5)
    carried = _coverage(0.2, carry_rates=True, evaluation_faces=40, images=1000, repeats=120, seed=5)
    assert fixed < 0.7 and carried >= 0.9


def test_interval_ignores_undefined_replicates():
    assert interval(np.r_[np.arange(101.0), np.nan]) == pytest.approx((2.5, 97.5))
    assert all(math.isnan(value) for value in interval(np.full(5, np.nan)))


def test_comparison_intervals():
    rng = np.random.default_rng(6)
    census = np.linspace(0.05, 0.95, 30)
    corrected = np.clip(census - 0.1 + rng.normal(0, 0.05, 30), 0, 1)
    replicates = np.clip(corrected[:, None] + rng.normal(0, 0.03, (30, 2000)), 0, 1)
    result = compare_with_census(census, corrected, replicates, rng)
    assert result.mean_difference == pytest.approx(np.mean(corrected - census))
    assert result.mean_difference_ci[0] < result.mean_difference < result.mean_difference_ci[1] < 0
    r = np.corrcoef(census, corrected)[0, 1]
    assert result.pearson[0] < r < result.pearson[1] <= 1
    assert 0.8 < result.spearman[0] < result.spearman[1] <= 1
    empty = compare_with_census(np.array([]), np.array([]), np.zeros((0, 100)), rng)
    assert math.isnan(empty.mean_difference) and all(math.isnan(v) for v in empty.pearson)
