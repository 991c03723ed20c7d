"""Where women appear in the ranking: shares by rank band, a rank-weighted share, the first woman's rank, and a
within-term test of whether women rank lower than men (Pew Research 2018), with bootstrap intervals.

Input is one row per counted image: term, rank (1 = top) and whether it shows a woman (see check_codes in
gimg.coded). Intervals resample images within each term, as gimg.correction does, so they are conditional on the
study's terms. Pure numpy/pandas/scipy: no files.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .correction import LEVEL, interval

RANK_BANDS: tuple[tuple[str, int, float], ...] = (
    ("1-10", 1, 10), ("11-20", 11, 20), ("21-50", 21, 50), ("51-100", 51, 100), ("101+", 101, math.inf),
)
WEIGHTING = "1/log2(rank + 1)"
TERM_COLUMNS = [
    "term", "images", "women", "share_women", "share_low", "share_high", "weighted_share", "weighted_low",
    "weighted_high", "first_woman_rank", "first_man_rank", "women_mean_rank", "men_mean_rank", "rank_difference",
]
BAND_COLUMNS = ["band", "terms", "images", "women", "share_women", "share_low", "share_high"]


def rank_weights(ranks: np.ndarray) -> np.ndarray:
    """DCG's position weights, 1/log2(rank + 1): 1 for the top result, 0.5 for the third, 0.15 for the 100th.

    They model attention that falls with position, as discounted cumulative gain does (Jarvelin & Kekalainen
    2002) and rank-aware fairness measures after it do, without ever reaching zero, so every result counts.
    """
    return 1.0 / np.log2(np.asarray(ranks, dtype=float) + 1.0)


def band_of(ranks: np.ndarray) -> np.ndarray:
    """The index in RANK_BANDS of each rank's band."""
    uppers = np.array([upper for _, _, upper in RANK_BANDS])
    return np.searchsorted(uppers, np.asarray(ranks, dtype=float), side="left")


def _mean_rank_difference(ranks: np.ndarray, women: np.ndarray) -> np.ndarray:
    """Mean rank of women minus mean rank of men along the last axis; NaN where either is absent."""
    count = women.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        women_mean = (ranks * women).sum(axis=-1) / count
        men_mean = (ranks * (1 - women)).sum(axis=-1) / (women.shape[-1] - count)
    return women_mean - men_mean


@dataclass(frozen=True)
class _TermDraws:
    """One term's bootstrap replicates: share, rank-weighted share, rank difference, and women/images per band."""

    share: np.ndarray
    weighted: np.ndarray
    difference: np.ndarray
    band_women: np.ndarray
    band_images: np.ndarray


def _draw_term(ranks: np.ndarray, women: np.ndarray, resamples: int, rng: np.random.Generator) -> _TermDraws:
    """Resample one term's images with replacement `resamples` times."""
    picks = rng.integers(0, len(ranks), size=(resamples, len(ranks)))
    drawn_women, drawn_ranks = women[picks], ranks[picks]
    weights = rank_weights(ranks)[picks]
    # Each drawn image's slot among replicate x band, counted in one pass.
    slots = (band_of(ranks)[picks] + len(RANK_BANDS) * np.arange(resamples)[:, None]).ravel()
    size = resamples * len(RANK_BANDS)
    return _TermDraws(
        share=drawn_women.mean(axis=1),
        weighted=(weights * drawn_women).sum(axis=1) / weights.sum(axis=1),
        difference=_mean_rank_difference(drawn_ranks, drawn_women),
        band_women=np.bincount(slots, weights=drawn_women.ravel(), minlength=size).reshape(resamples, -1).T,
        band_images=np.bincount(slots, minlength=size).reshape(resamples, -1).T,
    )


@dataclass(frozen=True)
class WeightedShare:
    """The study's mean share of women over terms, plain and rank-weighted (WEIGHTING), and weighted - plain.

    A negative gap means women are rarer near the top of the results than further down.
    """

    share: float
    share_ci: tuple[float, float]
    weighted: float
    weighted_ci: tuple[float, float]
    gap: float
    gap_ci: tuple[float, float]
    weighting: str = WEIGHTING


@dataclass(frozen=True)
class RankTables:
    """Per-term rank statistics (TERM_COLUMNS), shares by rank band (BAND_COLUMNS), the study's weighted share,
    and each term's share replicates (terms x resamples, in the order of `terms`) for census comparisons; the
    bands' pooled share replicates (bands x resamples, in the order of `bands`) for a correction per band."""

    terms: pd.DataFrame
    bands: pd.DataFrame
    weighted: WeightedShare
    share_replicates: np.ndarray
    difference_replicates: np.ndarray
    band_replicates: np.ndarray


def rank_tables(codes: pd.DataFrame, resamples: int, rng: np.random.Generator, level: float = LEVEL) -> RankTables:
    """Per term: share, rank-weighted share, first woman's and man's rank, mean ranks; pooled shares by band.

    codes: one row per image with term, rank (int, 1 = top) and woman (bool), as gimg.coded.check_codes returns.
    A band's share pools its images over terms (women in the band / images in the band).
    """
    rows, draws = [], []
    for term, group in codes.groupby("term", sort=False):
        ranks = group["rank"].to_numpy(dtype=float)
        women = group["woman"].to_numpy(dtype=float)
        drawn = _draw_term(ranks, women, resamples, rng)
        draws.append(drawn)
        weights = rank_weights(ranks)
        women_ranks, men_ranks = ranks[women == 1], ranks[women == 0]
        rows.append({
            "term": term, "images": len(ranks), "women": int(women.sum()), "share_women": women.mean(),
            **dict(zip(("share_low", "share_high"), interval(drawn.share, level))),
            "weighted_share": float((weights * women).sum() / weights.sum()),
            **dict(zip(("weighted_low", "weighted_high"), interval(drawn.weighted, level))),
            "first_woman_rank": women_ranks.min() if len(women_ranks) else math.nan,
            "first_man_rank": men_ranks.min() if len(men_ranks) else math.nan,
            "women_mean_rank": women_ranks.mean() if len(women_ranks) else math.nan,
            "men_mean_rank": men_ranks.mean() if len(men_ranks) else math.nan,
            "rank_difference": float(_mean_rank_difference(ranks, women)),
        })
    terms = pd.DataFrame(rows, columns=TERM_COLUMNS)
    bands, band_replicates = _bands(codes, draws, level)
    return RankTables(
        terms=terms,
        bands=bands,
        weighted=_weighted(terms, draws, level),
        share_replicates=np.array([drawn.share for drawn in draws]).reshape(len(draws), resamples),
        difference_replicates=np.array([drawn.difference for drawn in draws]).reshape(len(draws), resamples),
        band_replicates=band_replicates.reshape(len(bands), resamples),
    )


def _bands(codes: pd.DataFrame, draws: list[_TermDraws], level: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Pooled share of women in each rank band that holds any image, with its bootstrap interval and replicates."""
    bands = band_of(codes["rank"].to_numpy())
    women = codes["woman"].to_numpy(dtype=bool)
    band_women = sum(drawn.band_women for drawn in draws)
    band_images = sum(drawn.band_images for drawn in draws)
    rows, replicates_by_band = [], []
    for index, (name, _, _) in enumerate(RANK_BANDS):
        inside = bands == index
        if not inside.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates = band_women[index] / band_images[index]
        replicates_by_band.append(replicates)
        rows.append({
            "band": name, "terms": codes.loc[inside, "term"].nunique(), "images": int(inside.sum()),
            "women": int(women[inside].sum()), "share_women": float(women[inside].mean()),
            **dict(zip(("share_low", "share_high"), interval(replicates, level))),
        })
    return pd.DataFrame(rows, columns=BAND_COLUMNS), np.array(replicates_by_band)


def _weighted(terms: pd.DataFrame, draws: list[_TermDraws], level: float) -> WeightedShare:
    """The mean over terms of the plain and the rank-weighted share, and their gap, with intervals."""
    plain = np.mean([drawn.share for drawn in draws], axis=0)
    weighted = np.mean([drawn.weighted for drawn in draws], axis=0)
    share, weighted_share = float(terms["share_women"].mean()), float(terms["weighted_share"].mean())
    return WeightedShare(share, interval(plain, level), weighted_share, interval(weighted, level),
                         weighted_share - share, interval(weighted - plain, level))


@dataclass(frozen=True)
class RankTest:
    """Do women appear lower in the ranking than men, within a term? (Pew Research Center 2018.)

    mean_difference: the mean over terms (each term once) of the women's mean rank minus the men's, in places;
    positive means women appear lower. Its interval resamples images within terms; its p-value is two-sided,
    from permuting the genders within each term. pooled_difference weights each term by n_women * n_men / n
    (the precision of its difference) instead. van_elteren_z/p: the stratified rank-sum test of the same
    question (van Elteren 1960), positive z when women rank lower.
    """

    terms: int
    mean_difference: float
    ci: tuple[float, float]
    p_value: float
    permutations: int
    pooled_difference: float
    van_elteren_z: float
    van_elteren_p: float

    def sentence(self) -> str:
        """The finding in one sentence."""
        direction = "lower" if self.mean_difference > 0 else "higher"
        low, high = self.ci
        return (f"within a term, a woman's mean rank is {abs(self.mean_difference):.1f} places {direction} than a "
                f"man's (95% CI {low:+.1f} to {high:+.1f}; permutation p = {self.p_value:.3f}, {self.terms} terms)")


def rank_test(
    codes: pd.DataFrame, difference_replicates: np.ndarray, permutations: int, rng: np.random.Generator,
    level: float = LEVEL,
) -> RankTest:
    """Test whether women rank lower than men within terms; difference_replicates come from rank_tables."""
    from scipy import stats  # imported on use: `import gimg` stays fast

    observed, null, pooled, numerator, variance = [], np.zeros(permutations), [], 0.0, 0.0
    for _, group in codes.groupby("term", sort=False):
        ranks = group["rank"].to_numpy(dtype=float)
        women = group["woman"].to_numpy(dtype=float)
        n, k = len(ranks), int(women.sum())
        if k in (0, n):
            continue
        difference = float(_mean_rank_difference(ranks, women))
        observed.append(difference)
        pooled.append((difference, k * (n - k) / n))
        shuffled = rng.permuted(np.broadcast_to(women, (permutations, n)), axis=1)
        women_sums = shuffled @ ranks  # the sum of the women's ranks in each permutation
        null += women_sums / k - (ranks.sum() - women_sums) / (n - k)
        midranks = stats.rankdata(ranks)
        ties = np.unique(ranks, return_counts=True)[1]
        numerator += (midranks[women == 1].sum() - k * (n + 1) / 2) / (n + 1)
        variance += k * (n - k) * ((n + 1) - np.sum(ties**3 - ties) / (n * (n - 1))) / 12 / (n + 1) ** 2
    terms = len(observed)
    if terms == 0:
        nan = math.nan
        return RankTest(0, nan, (nan, nan), nan, permutations, nan, nan, nan)
    statistic = float(np.mean(observed))
    null /= terms
    extreme = np.sum(np.abs(null) >= abs(statistic) - 1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate may keep no term with both genders: NaN
        replicate_means = np.nanmean(difference_replicates, axis=0)
    values, precisions = np.array(pooled).T
    z = numerator / math.sqrt(variance) if variance > 0 else math.nan
    return RankTest(
        terms=terms, mean_difference=statistic, ci=interval(replicate_means, level),
        p_value=float((1 + extreme) / (1 + permutations)), permutations=permutations,
        pooled_difference=float(np.sum(values * precisions) / np.sum(precisions)),
        van_elteren_z=float(z), van_elteren_p=float(2 * stats.norm.sf(abs(z))) if not math.isnan(z) else math.nan,
    )
