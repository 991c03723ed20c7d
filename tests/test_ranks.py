"""Rank statistics and the exaggeration model on studies whose answers are known by construction."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gimg.exaggeration import exaggeration_model
from gimg.ranks import band_of, rank_tables, rank_test, rank_weights


def codes(terms: dict[str, dict[int, bool]]) -> pd.DataFrame:
    """Checked codes (term, rank, woman) from {term: {rank: woman}}."""
    return pd.DataFrame([{"term": term, "rank": rank, "woman": woman}
                         for term, ranks in terms.items() for rank, woman in ranks.items()])


def test_rank_weights_and_bands():
    assert rank_weights(np.array([1, 3, 7])).tolist() == [1.0, 0.5, 1 / 3]
    assert band_of(np.array([1, 10, 11, 20, 21, 50, 51, 100, 101, 500])).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_band_shares_pool_images_over_terms():
    study = codes({
        "a": {rank: rank > 10 for rank in range(1, 21)},  # men on ranks 1-10, women on 11-20
        "b": {**{rank: False for rank in range(1, 11)}, **{rank: rank % 2 == 0 for rank in range(101, 111)}},
    })
    bands = rank_tables(study, 300, np.random.default_rng(0)).bands.set_index("band")
    assert list(bands.index) == ["1-10", "11-20", "101+"]
    assert bands.loc["1-10", ["terms", "images", "women", "share_women"]].tolist() == [2, 20, 0, 0.0]
    assert bands.loc["11-20", ["share_women", "share_low", "share_high"]].tolist() == [1.0, 1.0, 1.0]
    assert bands.loc["101+", "share_women"] == 0.5
    assert 0 < bands.loc["101+", "share_low"] < 0.5 < bands.loc["101+", "share_high"] < 1


def test_term_table_weighted_share_and_first_ranks():
    study = codes({"judge": {1: True, 3: False}, "pilot": {2: False, 5: False, 9: False}})
    tables = rank_tables(study, 200, np.random.default_rng(0))
    judge, pilot = (row for _, row in tables.terms.set_index("term").iterrows())
    assert judge["weighted_share"] == pytest.approx(1 / 1.5)  # weights 1 and 0.5
    assert judge["share_women"] == 0.5 and judge["first_woman_rank"] == 1 and judge["first_man_rank"] == 3
    assert judge["rank_difference"] == -2
    assert math.isnan(pilot["first_woman_rank"]) and pilot["first_man_rank"] == 2 and pilot["share_women"] == 0
    assert tables.weighted.share == 0.25 and tables.weighted.weighted == pytest.approx(1 / 3)
    assert tables.share_replicates.shape == tables.difference_replicates.shape == (2, 200)


def _test(study: pd.DataFrame, permutations: int = 1999, seed: int = 0):
    rng = np.random.default_rng(seed)
    tables = rank_tables(study, 500, rng)
    return rank_test(study, tables.difference_replicates, permutations, rng)


def test_women_at_the_bottom_of_every_term_rank_lower():
    study = codes({f"t{i}": {rank: rank > 6 for rank in range(1, 9)} for i in range(10)})
    test = _test(study)
    assert test.terms == 10 and test.mean_difference == 4.0 == test.pooled_difference  # 7.5 - 3.5
    assert test.p_value == 1 / 2000  # no within-term shuffle is as extreme
    assert 0 < test.ci[0] < 4.0 < test.ci[1]
    assert test.van_elteren_z > 3 and test.van_elteren_p < 0.01
    assert test.sentence().startswith("within a term, a woman's mean rank is 4.0 places lower than a man's")


def test_symmetric_placement_is_no_evidence():
    study = codes({f"t{i}": {1: True, 2: False, 3: False, 4: True} for i in range(5)})
    test = _test(study)
    assert test.mean_difference == 0 and test.p_value == 1.0
    assert test.van_elteren_z == 0 and test.van_elteren_p == 1.0


def test_permutation_p_value_matches_exact_enumeration():
    study = codes({"t": {1: False, 2: False, 3: True, 4: True}})  # observed difference 3.5 - 1.5 = 2
    pairs = list(itertools.combinations([1, 2, 3, 4], 2))
    exact = sum(abs(np.mean(p) - np.mean([r for r in (1, 2, 3, 4) if r not in p])) >= 2 for p in pairs) / len(pairs)
    assert exact == pytest.approx(1 / 3)
    assert _test(study, permutations=19999).p_value == pytest.approx(exact, abs=0.02)


def test_van_elteren_on_one_term_is_the_mann_whitney_test():
    rng = np.random.default_rng(3)
    women = rng.random(40) < 0.4
    study = codes({"t": {rank: bool(woman) for rank, woman in enumerate(women, start=1)}})
    ranks = np.arange(1, 41)
    expected = stats.mannwhitneyu(ranks[women], ranks[~women], use_continuity=False, method="asymptotic")
    assert _test(study, permutations=99).van_elteren_p == pytest.approx(expected.pvalue, rel=1e-9)


def test_terms_with_one_gender_do_not_enter_the_test():
    test = _test(codes({"roofer": {1: False, 2: False}, "nurse": {1: True, 2: True}}), permutations=99)
    assert test.terms == 0 and math.isnan(test.mean_difference) and math.isnan(test.p_value)


def test_exaggeration_model_recovers_known_coefficients():
    rng = np.random.default_rng(7)
    census = np.linspace(0.02, 0.98, 60)
    images = np.full(60, 5000)
    women = rng.binomial(images, 1 / (1 + np.exp(-(-0.3 + 5.0 * (census - 0.5)))))
    model = exaggeration_model(women, images, census)
    assert model.intercept_ci[0] < -0.3 < model.intercept_ci[1] and abs(model.intercept + 0.3) < 0.05
    assert model.slope_ci[0] < 5.0 < model.slope_ci[1] and abs(model.slope - 5.0) < 0.2
    assert model.dispersion == pytest.approx(1, abs=0.5)  # binomial data: no over-dispersion
    point, low, high = model.share_at(0.5)
    assert low < point < high and point == pytest.approx(1 / (1 + math.exp(0.3)), abs=0.02)


def test_exaggeration_model_matches_a_least_squares_refit_at_its_solution():
    """At the maximum likelihood the score is zero: the weighted residuals are orthogonal to the design."""
    census = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    images = np.array([50, 80, 60, 70, 40])
    women = np.array([3, 20, 27, 50, 37])
    model = exaggeration_model(women, images, census)
    fitted = 1 / (1 + np.exp(-(model.intercept + model.slope * (census - 0.5))))
    residual = women - images * fitted
    assert abs(residual.sum()) < 1e-6 and abs((residual * (census - 0.5)).sum()) < 1e-6


@pytest.mark.parametrize(
    "women, images, census, note",
    [
        ([1, 2], [10, 10], [0.1, 0.5], "only 2 term(s): the model needs at least 3"),
        ([1, 2, 3], [10, 10, 10], [0.5, 0.5, 0.5], "every term has the same census share"),
        ([0, 0, 0], [10, 10, 10], [0.1, 0.5, 0.9], "the images show only women or only men"),
    ],
)
def test_exaggeration_model_says_why_it_cannot_be_fitted(women, images, census, note):
    model = exaggeration_model(women, images, census)
    assert model.note.startswith(note) and math.isnan(model.intercept)
