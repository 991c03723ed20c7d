"""Studies coded by people (as Kay et al. 2015 and Pew 2018 coded theirs): per-term shares with intervals, the
census comparison, rank statistics and the stereotype-exaggeration model, with no classifier correction.

analyze_codes takes plain DataFrames and returns plain dataclasses and DataFrames; reading files and drawing
figures are left to the caller. Pure numpy/pandas/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .correction import LEVEL, compare_with_census, correlate
from .errors import GimgError
from .exaggeration import ExaggerationModel, exaggeration_model
from .options import AnalyzeOptions
from .ranks import RankTables, RankTest, rank_tables, rank_test

CODE_COLUMNS = ("term", "rank", "gender")
GENDERS = {"woman": True, "man": False, "female": True, "male": False}
CENSUS_SHARE = "bls_share_women"


def check_codes(codes: pd.DataFrame) -> pd.DataFrame:
    """The codes checked and normalised: term (str), rank (int >= 1), woman (bool), and url when given.

    codes has one row per coded image: term, rank (its position in the results, 1 = top; gaps are fine when
    images were dropped) and gender (woman or man; female/male also read). Raises GimgError naming the problem.
    """
    missing = [column for column in CODE_COLUMNS if column not in codes.columns]
    if missing:
        raise GimgError(f"codes lack column(s) {', '.join(missing)}: give term, rank, gender (woman/man), url optional")
    if codes.empty:
        raise GimgError("codes have no rows: give one row per coded image (term, rank, gender)")
    terms = codes["term"].astype(str).str.strip()
    ranks = pd.to_numeric(codes["rank"], errors="coerce")
    bad_rank = ranks.isna() | (ranks < 1) | (ranks != ranks.round())
    if bad_rank.any():
        row = int(np.flatnonzero(bad_rank.to_numpy())[0])
        value = codes["rank"].iloc[row]
        shown = repr(value) if isinstance(value, str) else str(value)
        raise GimgError(f"codes row {row + 1}: rank {shown} is not a whole number >= 1 "
                        "(ranks count from 1; add 1 to ranks that count from 0)")
    genders = codes["gender"].astype(str).str.strip().str.lower()
    unknown = sorted(set(genders) - set(GENDERS))
    if unknown:
        raise GimgError(f"codes have gender(s) {', '.join(map(repr, unknown[:5]))}: write woman or man (drop images "
                        "whose gender was not coded)")
    checked = pd.DataFrame({"term": terms, "rank": ranks.astype(int), "woman": genders.map(GENDERS).astype(bool)})
    if "url" in codes.columns:
        checked["url"] = codes["url"].astype(str)
    repeated = checked.duplicated(["term", "rank"])
    if repeated.any():
        term, rank = checked.loc[repeated, ["term", "rank"]].iloc[0]
        raise GimgError(f"codes list rank {rank} of {term!r} more than once: keep one row per image")
    return checked.sort_values(["term", "rank"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class CensusComparison:
    """Search shares against census shares over the compared terms: correlations with p-values and bootstrap
    intervals (terms and images resampled, as gimg.correction.compare_with_census), and the mean of search -
    census; note says why a correlation is NaN."""

    terms: int
    pearson_r: float
    pearson_p: float
    pearson_ci: tuple[float, float]
    spearman_rho: float
    spearman_p: float
    spearman_ci: tuple[float, float]
    mean_difference: float
    mean_difference_ci: tuple[float, float]
    note: str = ""


def compare_shares(
    census: np.ndarray, search: np.ndarray, replicates: np.ndarray, rng: np.random.Generator
) -> CensusComparison:
    """Compare search shares (with their terms x resamples replicates) with census shares."""
    intervals = compare_with_census(census, search, replicates, rng)
    correlation = correlate(census, search)
    nan = (math.nan, math.nan)
    ci = (nan, nan) if correlation.note else (intervals.pearson, intervals.spearman)
    return CensusComparison(
        correlation.n_terms, correlation.pearson_r, correlation.pearson_p, ci[0], correlation.spearman_rho,
        correlation.spearman_p, ci[1], intervals.mean_difference, intervals.mean_difference_ci, correlation.note,
    )


@dataclass(frozen=True)
class CodedStudy:
    """Everything analyze_codes computed.

    terms: one row per term, ranks.TERM_COLUMNS plus census_share_women, difference (search - census),
    too_few_images and compared (whether the term enters the census comparison and the model). bands: shares by
    rank band (ranks.BAND_COLUMNS). without_census: coded terms that the census lacks.
    """

    terms: pd.DataFrame
    bands: pd.DataFrame
    ranks: RankTables
    rank_test: RankTest
    comparison: CensusComparison
    exaggeration: ExaggerationModel
    without_census: list[str]
    resamples: int
    permutations: int
    seed: int
    min_images: int


def analyze_codes(
    codes: pd.DataFrame,
    census: pd.DataFrame,
    options: AnalyzeOptions = AnalyzeOptions(),
    *,
    permutations: int = 9999,
    level: float = LEVEL,
) -> CodedStudy:
    """Analyze a study coded by people: codes (term, rank, gender[, url]) against census (term, bls_share_women).

    Terms with a census share and at least options.min_faces coded images enter the census comparison and the
    exaggeration model; rank statistics use every term. census shares are fractions in [0, 1]. options.resamples
    and options.seed drive the bootstrap.
    """
    resamples, seed, min_images = options.resamples, options.seed, options.min_faces
    if permutations < 99:
        raise ValueError(f"permutations must be at least 99 (got {permutations})")
    checked = check_codes(codes)
    missing = [column for column in ("term", CENSUS_SHARE) if column not in census.columns]
    if missing:
        raise GimgError(f"census lacks column(s) {', '.join(missing)}: it needs term and {CENSUS_SHARE} (fractions)")
    shares = pd.to_numeric(census[CENSUS_SHARE], errors="coerce")
    if not shares.dropna().between(0, 1).all():
        raise GimgError(f"census has {CENSUS_SHARE} outside [0, 1]: write shares as fractions")
    by_term = pd.Series(shares.to_numpy(), index=census["term"].astype(str).str.strip())
    if by_term.index.duplicated().any():
        repeated = by_term.index[by_term.index.duplicated()].unique().tolist()
        raise GimgError(f"census lists terms more than once ({', '.join(repeated[:5])}): keep one row each")

    rng = np.random.default_rng(seed)
    tables = rank_tables(checked, resamples, rng, level)
    terms = tables.terms.copy()
    terms["census_share_women"] = terms["term"].map(by_term).astype(float)
    terms["difference"] = terms["share_women"] - terms["census_share_women"]
    terms["too_few_images"] = terms["images"] < min_images
    terms["compared"] = terms["census_share_women"].notna() & ~terms["too_few_images"]
    inside = terms["compared"].to_numpy()
    truth = terms["census_share_women"].to_numpy()[inside]
    comparison = compare_shares(truth, terms["share_women"].to_numpy()[inside], tables.share_replicates[inside], rng)
    model = exaggeration_model(terms["women"].to_numpy()[inside], terms["images"].to_numpy()[inside], truth, level)
    test = rank_test(checked, tables.difference_replicates, permutations, rng, level)
    return CodedStudy(
        terms=terms, bands=tables.bands, ranks=tables, rank_test=test, comparison=comparison, exaggeration=model,
        without_census=terms.loc[terms["census_share_women"].isna(), "term"].tolist(), resamples=resamples,
        permutations=permutations, seed=seed, min_images=min_images,
    )
