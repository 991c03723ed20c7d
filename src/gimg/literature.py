"""The literature's statistics for one study or branch: where women appear in the ranking (rank bands, a
rank-weighted share, the first woman, the within-term rank test) and Kay et al.'s exaggeration model, for
classified studies and for studies coded by people. Pure numpy/pandas: analyze.py gathers the data.

For a classified study the shares by rank band are also corrected for the classifier's errors. The Rogan-Gladen
correction holds for any set of faces whose sensitivity and specificity are those of the evaluation, a set of
rank positions as much as a term, so a band is corrected exactly as a term is, with the same error-rate draws in
its bootstrap. The per-term rank statistics and the rank test use the classifier's calls as they are: errors
that do not depend on rank leave the permutation test valid but weaken it, and pull rank differences toward 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .coded import CodedStudy
from .correction import LEVEL, Evaluation, draw_error_rates, interval, rogan_gladen
from .exaggeration import ExaggerationModel, exaggeration_model, share_at_replicates
from .options import AnalyzeOptions
from .ranks import BAND_COLUMNS, TERM_COLUMNS, RankTables, RankTest, WeightedShare, rank_tables, rank_test

PERMUTATIONS = 9999  # of the rank test: its p-value's Monte Carlo error is about 0.002 near p = 0.04
CORRECTED_BAND_COLUMNS = ["corrected_share", "corrected_low", "corrected_high"]
RANK_BAND_COLUMNS = [*BAND_COLUMNS, *CORRECTED_BAND_COLUMNS]


@dataclass(frozen=True)
class Literature:
    """Rank statistics and the exaggeration model of one study.

    ranks: per term (ranks.TERM_COLUMNS); bands: RANK_BAND_COLUMNS, the corrected share equal to the raw one when
    corrected is False (people's codes, or no evaluation). exaggeration_interval: for a classified study, the
    bootstrap interval of the share at 50% women that carries terms, images and the classifier's error rates
    (the model's own Wald interval carries only the scatter of terms); None for codes.
    """

    ranks: pd.DataFrame
    bands: pd.DataFrame
    weighted: WeightedShare
    rank_test: RankTest
    exaggeration: ExaggerationModel
    exaggeration_interval: tuple[float, float] | None
    corrected: bool
    permutations: int

    def exaggeration_sentence(self) -> str:
        """Kay et al.'s summary, with the interval that carries the most of the study's uncertainty."""
        if self.exaggeration.note:
            return f"no exaggeration model: {self.exaggeration.note}"
        if self.exaggeration_interval is None:
            return self.exaggeration.sentence()
        point = self.exaggeration.share_at(0.5)[0]
        low, high = self.exaggeration_interval
        return (f"an occupation with 50% women appears with {point:.1%} women in search (95% CI {low:.1%} to "
                f"{high:.1%}, bootstrap over terms, images and the classifier's error rates; "
                f"{self.exaggeration.terms} terms)")

    def to_json(self) -> dict:
        """What analysis.json says of the ranks and the model (the tables are in ranks.csv, rank_bands.csv)."""
        model, test, weighted = self.exaggeration, self.rank_test, self.weighted
        point, low, high = model.share_at(0.5) if not model.note else (math.nan,) * 3
        return {
            "rank_bands_corrected": self.corrected,
            "weighted_share": {"weighting": weighted.weighting, "share": weighted.share,
                               "share_ci": weighted.share_ci, "weighted": weighted.weighted,
                               "weighted_ci": weighted.weighted_ci, "gap": weighted.gap, "gap_ci": weighted.gap_ci},
            "rank_test": {"terms": test.terms, "mean_difference": test.mean_difference, "ci": test.ci,
                          "permutation_p": test.p_value, "permutations": test.permutations,
                          "pooled_difference": test.pooled_difference, "van_elteren_z": test.van_elteren_z,
                          "van_elteren_p": test.van_elteren_p},
            "exaggeration": {"terms": model.terms, "intercept": model.intercept, "intercept_ci": model.intercept_ci,
                             "intercept_t": model.intercept_t, "intercept_p": model.intercept_p,
                             "slope": model.slope, "slope_ci": model.slope_ci, "dispersion": model.dispersion,
                             "share_at_50": point, "share_at_50_wald_ci": (low, high),
                             "share_at_50_bootstrap_ci": self.exaggeration_interval, "note": model.note,
                             "sentence": self.exaggeration_sentence()},
        }


def corrected_bands(
    tables: RankTables, evaluation: Evaluation | None, rng: np.random.Generator, level: float = LEVEL
) -> pd.DataFrame:
    """The bands with their share corrected by Rogan-Gladen, its interval from the bands' replicates with one
    sensitivity and specificity draw per replicate (clipped to [0, 1]); the raw share without an evaluation."""
    bands = tables.bands.copy()
    if evaluation is None:
        bands["corrected_share"], bands["corrected_low"], bands["corrected_high"] = (
            bands["share_women"], bands["share_low"], bands["share_high"])
        return bands[RANK_BAND_COLUMNS]
    resamples = tables.band_replicates.shape[1]
    sensitivity, specificity = draw_error_rates(evaluation, resamples, rng)
    points = rogan_gladen(bands["share_women"].to_numpy(float), evaluation.sensitivity, evaluation.specificity)
    replicates = np.clip(rogan_gladen(tables.band_replicates, sensitivity, specificity), 0, 1)
    bands["corrected_share"] = np.clip(points, 0, 1)
    limits = [interval(row, level) for row in replicates]
    bands["corrected_low"] = [low for low, _ in limits]
    bands["corrected_high"] = [high for _, high in limits]
    return bands[RANK_BAND_COLUMNS]


def classified_literature(
    codes: pd.DataFrame, compared: pd.DataFrame, replicates: np.ndarray, evaluation: Evaluation | None,
    options: AnalyzeOptions, rng: np.random.Generator,
) -> Literature | None:
    """The statistics of a classified study, None when no image has a counted face.

    codes: one row per counted image (term, rank, woman); compared: the summary rows of the terms in the census
    comparison (faces, corrected_share, census_share_women), replicates their corrected-share replicates. The
    model is fitted to corrected shares x counted faces.
    """
    if codes.empty:
        return None
    tables = rank_tables(codes, options.resamples, rng)
    bands = corrected_bands(tables, evaluation, rng)
    test = rank_test(codes, tables.difference_replicates, PERMUTATIONS, rng)
    faces = compared["faces"].to_numpy(float)
    census = compared["census_share_women"].to_numpy(float)
    corrected = compared["corrected_share"].to_numpy(float)
    model = exaggeration_model(corrected * faces, faces, census)
    bootstrap = interval(share_at_replicates(replicates, faces, census, rng)) if not model.note else None
    return Literature(tables.terms[TERM_COLUMNS], bands, tables.weighted, test, model, bootstrap,
                      evaluation is not None, PERMUTATIONS)


def coded_literature(study: CodedStudy) -> Literature:
    """The statistics analyze_codes computed, as a Literature (no correction: people coded the genders)."""
    bands = study.bands.copy()
    bands["corrected_share"], bands["corrected_low"], bands["corrected_high"] = (
        bands["share_women"], bands["share_low"], bands["share_high"])
    return Literature(study.terms[TERM_COLUMNS], bands[RANK_BAND_COLUMNS], study.ranks.weighted, study.rank_test,
                      study.exaggeration, None, False, study.permutations)
