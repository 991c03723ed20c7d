"""The study-rate estimator against simulated studies: unbiased under the design, and the two pitfalls it avoids.

Each simulated study has terms with known shares of women, a classifier with known sensitivity and specificity,
non-person "faces" the classifier calls female at a known rate, and raters who cannot tell some people's gender.
The sample is drawn with the same allocation gimg uses and labelled from the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from gimg.correction import rogan_gladen
from gimg.studyrates import (
    StudyCell,
    allocation_order,
    correct_with_study,
    draw_study_rates,
    estimate_term_with_study,
    labels_to_halve,
    study_rates,
)

THETAS = np.array([0.05, 0.1, 0.2, 0.3, 0.9])  # share of women among each term's real people
TERM_FACES = 600
SENSITIVITY, SPECIFICITY = 0.8, 0.9
NONPERSON, NONPERSON_FEMALE = 0.08, 0.6  # share of counted faces that are no real person; share of those called female
UNCLEAR = 0.05  # people whose gender raters cannot tell
SAMPLE = 300
SIMULATIONS = 200


@dataclass
class Study:
    """A simulated study: per face its term, truth (female, male, nonperson) and predicted class."""

    term: np.ndarray
    truth: np.ndarray
    called_female: np.ndarray

    def realized(self) -> dict[str, float]:
        women, men, other = self.truth == "female", self.truth == "male", self.truth == "nonperson"
        return {"sensitivity": self.called_female[women].mean(), "specificity": (~self.called_female[men]).mean(),
                "nonperson_share": other.mean()}


def simulate(rng: np.random.Generator, thetas=THETAS, nonperson=NONPERSON) -> Study:
    terms, truths, called = [], [], []
    for index, theta in enumerate(thetas):
        other = rng.random(TERM_FACES) < nonperson
        woman = rng.random(TERM_FACES) < theta
        truth = np.where(other, "nonperson", np.where(woman, "female", "male"))
        p_female = np.where(other, NONPERSON_FEMALE, np.where(woman, SENSITIVITY, 1 - SPECIFICITY))
        terms.append(np.full(TERM_FACES, index))
        truths.append(truth)
        called.append(rng.random(TERM_FACES) < p_female)
    return Study(np.concatenate(terms), np.concatenate(truths), np.concatenate(called))


def sample_cells(study: Study, rng: np.random.Generator, n: int = SAMPLE) -> tuple[list[StudyCell], dict]:
    """Draw the stratified sample as gimg does, label it from the truth, and return its cells and raw counts."""
    keys = [(term, kind) for term in range(len(THETAS)) for kind in ("female", "male")]
    members = {key: rng.permutation(np.flatnonzero((study.term == key[0]) & (study.called_female == (key[1] == "female"))))
               for key in keys}
    order = allocation_order([len(members[key]) for key in keys], [kind for _, kind in keys], n)
    taken = np.bincount(order, minlength=len(keys))
    cells, raw = [], {"female": {"female": 0, "male": 0}, "male": {"female": 0, "male": 0}}
    for key, count in zip(keys, taken):
        chosen = members[key][:count]
        truth = study.truth[chosen]
        unclear = rng.random(count) < UNCLEAR
        labels = np.where(truth == "nonperson", "not_a_person", np.where(unclear, "unclear", truth))
        got = {label: int((labels == label).sum()) for label in ("female", "male", "unclear", "not_a_person")}
        cells.append(StudyCell(f"t{key[0]}", key[1], len(members[key]), **got))
        raw[key[1]]["female"] += got["female"]
        raw[key[1]]["male"] += got["male"]
    return cells, raw


def term_raw_shares(study: Study) -> np.ndarray:
    return np.array([study.called_female[study.term == term].mean() for term in range(len(THETAS))])


@pytest.fixture(scope="module")
def runs():
    """SIMULATIONS studies, each with its realized rates, sample cells, naive counts and raw term shares."""
    rng = np.random.default_rng(20261124)
    results = []
    for _ in range(SIMULATIONS):
        study = simulate(rng)
        cells, raw = sample_cells(study, rng)
        results.append({"study": study, "cells": cells, "raw": raw, "point": study_rates(cells),
                        "shares": term_raw_shares(study)})
    return results


def test_allocation_gives_each_class_half_and_every_cell_a_label_and_grows_without_moving():
    sizes, kinds = [900, 100, 50, 950, 0, 3], ["female", "male"] * 3
    order = allocation_order(sizes, kinds, 120)
    taken = np.bincount(order, minlength=len(sizes))
    assert abs(taken[[0, 2, 4]].sum() - 60) <= 2 and taken.sum() == 120  # Huntington-Hill: about half each
    assert taken[4] == 0 and (taken[[0, 1, 2, 3, 5]] >= 1).all() and taken[5] <= 3
    assert taken[0] > taken[2] and taken[3] > taken[1]  # within a class, proportional to size
    assert allocation_order(sizes, kinds, 300)[:120] == order
    assert len(allocation_order(sizes, kinds, 10_000)) == sum(sizes)


def test_design_estimates_are_unbiased(runs):
    for rate in ("sensitivity", "specificity", "nonperson_share"):
        errors = [getattr(run["point"], rate) - run["study"].realized()[rate] for run in runs]
        assert abs(np.mean(errors)) < 0.01, rate


def test_pitfall_rates_counted_from_the_sample_without_stratum_sizes_are_biased(runs):
    """Sensitivity as women called female / all women in the sample: the sample takes both classes in equal parts,
    the study does not (far fewer faces are called female here), so it overstates sensitivity."""
    naive = [run["raw"]["female"]["female"] / (run["raw"]["female"]["female"] + run["raw"]["male"]["female"])
             for run in runs]
    truth = [run["study"].realized()["sensitivity"] for run in runs]
    assert np.mean(naive) - np.mean(truth) > 0.05
    designed = [run["point"].sensitivity for run in runs]
    assert abs(np.mean(designed) - np.mean(truth)) < 0.01


def test_pitfall_predictive_values_applied_to_a_term_are_biased(runs):
    """P(female | called female) and P(female | called male) of the study, applied to each term, pull every term
    toward the study's share of women; Rogan-Gladen with the design's rates does not."""
    direct, corrected = [], []
    for run in runs:
        study, shares = run["study"], run["shares"]
        person = study.truth != "nonperson"
        ppv = (study.truth[study.called_female & person] == "female").mean()
        false_omission = (study.truth[~study.called_female & person] == "female").mean()
        people_shares = np.array([study.called_female[(study.term == t) & person].mean() for t in range(len(THETAS))])
        direct.append(people_shares * ppv + (1 - people_shares) * false_omission)
        corrected.append(correct_with_study(shares, run["point"]))
    direct_bias = np.mean(direct, axis=0) - THETAS
    corrected_bias = np.mean(corrected, axis=0) - THETAS
    assert abs(direct_bias[0]) > 0.05 and abs(direct_bias[-1]) > 0.05, direct_bias
    assert (np.abs(corrected_bias) < 0.015).all(), corrected_bias


def test_nonperson_faces_must_come_out_of_the_share(runs):
    """Ignoring the non-person faces (Rogan-Gladen on the raw share) overstates women in male terms."""
    ignored = [rogan_gladen(run["shares"], run["point"].sensitivity, run["point"].specificity) for run in runs]
    removed = [correct_with_study(run["shares"], run["point"]) for run in runs]
    assert np.mean(ignored, axis=0)[0] - THETAS[0] > 0.03
    assert (np.abs(np.mean(removed, axis=0) - THETAS) < 0.015).all()


def test_nonperson_shares_per_predicted_class_do_not_travel_between_terms(runs):
    """Removing the study's share of non-person faces among the faces called female (and male) from each term
    under-removes them in a term with few women, where more of its called-female faces are non-persons; removing
    s * a from the raw share (the three-class confusion) does not depend on the term's share of women."""
    per_class = []
    for run in runs:
        point, study = run["point"], run["study"]
        called = np.array([study.called_female[study.term == term].mean() for term in range(len(THETAS))])
        people_female = called * (1 - point.nonperson_given_female)
        people_share = people_female / (people_female + (1 - called) * (1 - point.nonperson_given_male))
        per_class.append(rogan_gladen(people_share, point.sensitivity, point.specificity))
    assert np.mean(per_class, axis=0)[0] - THETAS[0] > 0.02


def test_rate_intervals_cover_the_realized_rates(runs):
    rng = np.random.default_rng(5)
    covered = {"sensitivity": 0, "specificity": 0}
    for run in runs:
        draws = draw_study_rates(run["cells"], 400, rng)
        for rate in covered:
            low, high = np.nanpercentile(getattr(draws, rate), [2.5, 97.5])
            covered[rate] += low <= run["study"].realized()[rate] <= high
    for rate, count in covered.items():
        assert count / len(runs) >= 0.9, (rate, count)


def test_term_intervals_cover_the_truth(runs):
    """Images resampled per term and the study's rates redrawn per replicate: the 95% intervals cover the share."""
    rng = np.random.default_rng(6)
    covered = np.zeros(len(THETAS))
    for run in runs[:100]:
        draws = draw_study_rates(run["cells"], 400, rng)
        for term in range(len(THETAS)):
            women = run["study"].called_female[run["study"].term == term].astype(float)
            estimate, _ = estimate_term_with_study(women, np.ones_like(women), draws, run["point"], rng)
            covered[term] += estimate.corrected_low <= THETAS[term] <= estimate.corrected_high
    assert (covered / 100 >= 0.88).all(), covered


def test_an_unlabelled_class_is_refused_with_what_to_do():
    cells = [StudyCell("a", "female", 10, female=3), StudyCell("a", "male", 10)]
    with pytest.raises(ValueError, match="no labelled face among the 10 the classifier called male"):
        study_rates(cells)


def test_more_labels_shrink_the_interval_as_promised():
    """Quadruple the labels in the proportions labels_to_halve asks for: the interval's width halves."""
    rng = np.random.default_rng(7)
    study = simulate(rng)
    cells, _ = sample_cells(study, rng, n=200)
    plan = labels_to_halve(cells, 4000, rng)
    widths = {}
    for name, extra in (("now", {"female": 0, "male": 0}), ("more", plan["sensitivity"]["by_predicted_class"])):
        scaled = []
        for cell in cells:
            in_class = sum(c.labelled for c in cells if c.predicted == cell.predicted)
            factor = 1 + extra[cell.predicted] / in_class
            scaled.append(StudyCell(cell.term, cell.predicted, cell.faces,
                                    **{label: round(getattr(cell, label) * factor)
                                       for label in ("female", "male", "unclear", "not_a_person", "not_a_face")}))
        draws = draw_study_rates(scaled, 4000, rng)
        low, high = np.nanpercentile(draws.sensitivity, [2.5, 97.5])
        widths[name] = high - low
    assert widths["more"] / widths["now"] == pytest.approx(0.5, abs=0.06)
    assert plan["sensitivity"]["more_labels"] > 0
