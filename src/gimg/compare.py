"""The study-level comparison of a study's branches: each term's share side by side, the differences between
engines and between markets, the drift between waves, the overlap of their result URLs, and the shares by rank
band. Computes from the branches' output trees (each analysed by `gimg analyze`) and writes only tables;
studyreport.py draws and writes it up.

Differences and drift have bootstrap intervals that resample each term's images in both branches, and draw the
classifier's sensitivity and specificity once per replicate for all (one classifier made every branch's errors),
as gimg.correction does for one branch. The "all terms" rows average over the terms both branches have, with
the terms held fixed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from .analyze import choose_evaluation, term_counts
from .correction import Correction, Evaluation, interval, make_correction
from .design import Branch, StudyDesign, read_design
from .errors import MissingInputError
from .layout import Layout, atomic_path, write_csv, write_json
from .options import AnalyzeOptions

BRANCH_COLUMNS = ["wave", "engine", "market", "branch"]
SIDE_COLUMNS = [*BRANCH_COLUMNS, "term", "images", "faces", "share_women", "share_low", "share_high",
                "corrected_share", "corrected_low", "corrected_high", "census_share_women", "too_few_faces"]
PAIR_COLUMNS = ["kind", "term", "a", "b"]
DIFFERENCE_COLUMNS = [*PAIR_COLUMNS, "share_a", "share_b", "difference", "low", "high", "excludes_zero",
                      "too_few_faces"]
OVERLAP_COLUMNS = [*PAIR_COLUMNS, "results_a", "results_b", "shared", "jaccard", "shared_top10"]
SUMMARY_COLUMNS = [*BRANCH_COLUMNS, "terms", "compared", "pearson_r", "mean_difference", "mean_difference_low",
                   "mean_difference_high", "share_at_50", "share_at_50_low", "share_at_50_high", "rank_difference",
                   "rank_permutation_p"]
ALL_TERMS = "(all terms)"
KINDS = ("engine", "market", "wave")  # what differs between the two branches of a pair


@dataclass
class StudyComparison:
    """Everything compare_study computed; tables as in the module's *_COLUMNS, one row per term and pair.

    differences holds the engine and market pairs, drift the wave pairs (b the later wave); excludes_zero marks
    a difference whose interval excludes 0. branches: one row per analysed branch with its headline numbers.
    """

    layout: Layout
    design: StudyDesign
    options: AnalyzeOptions
    branches: pd.DataFrame
    side_by_side: pd.DataFrame
    differences: pd.DataFrame
    drift: pd.DataFrame
    overlap: pd.DataFrame
    bands: pd.DataFrame
    evaluation: Evaluation | None = None
    notes: list[str] = field(default_factory=list)


def pairs(branches: list[Branch]) -> list[tuple[str, Branch, Branch]]:
    """(kind, a, b) for each two branches that differ in exactly one of engine, market and wave; for waves only
    consecutive ones, earlier first."""
    waves = list(dict.fromkeys(branch.wave for branch in branches))
    found = []
    for a, b in combinations(branches, 2):
        same = {"engine": a.engine == b.engine, "market": a.market == b.market, "wave": a.wave == b.wave}
        differing = [kind for kind in KINDS if not same[kind]]
        if len(differing) != 1:
            continue
        kind = differing[0]
        if kind == "wave":
            if abs(waves.index(a.wave) - waves.index(b.wave)) != 1:
                continue
            a, b = sorted((a, b), key=lambda branch: waves.index(branch.wave))
        found.append((kind, a, b))
    return found


def _branch_columns(branch: Branch) -> dict[str, str]:
    return {"wave": branch.wave, "engine": branch.engine, "market": branch.market or "", "branch": branch.label}


def _read_table(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, keep_default_na=False, na_values=[""]) if path.is_file() else None


def _summary_row(branch: Branch, analysis: dict, summary: pd.DataFrame) -> dict:
    """A branch's headline numbers from its analysis.json."""
    model = analysis.get("exaggeration") or {}
    test = analysis.get("rank_test") or {}
    low, high = analysis.get("mean_difference_ci") or (math.nan, math.nan)
    wald = model.get("share_at_50_bootstrap_ci") or model.get("share_at_50_wald_ci") or (math.nan, math.nan)
    return {**_branch_columns(branch), "terms": len(summary), "compared": analysis.get("n_terms"),
            "pearson_r": analysis.get("pearson_r"), "mean_difference": analysis.get("mean_difference"),
            "mean_difference_low": low, "mean_difference_high": high, "share_at_50": model.get("share_at_50"),
            "share_at_50_low": wald[0], "share_at_50_high": wald[1], "rank_difference": test.get("mean_difference"),
            "rank_permutation_p": test.get("permutation_p")}


def _urls(layout: Layout, term: str) -> list[str]:
    """A term's result URLs in rank order, from its manifest (every row, whatever its status)."""
    manifest = pd.read_csv(layout.manifest(term), dtype=str, keep_default_na=False)
    return manifest.sort_values("rank", key=lambda ranks: ranks.astype(int))["url"].tolist()


def overlap(kind: str, a: Branch, b: Branch, out: Path) -> list[dict]:
    """Per term both branches downloaded: how many result URLs they share, the Jaccard index, and the shared
    URLs among each one's top 10."""
    first, second = Layout(a.path(out)), Layout(b.path(out))
    rows = []
    for term in first.terms_with("manifest"):
        if not second.manifest(term).exists():
            continue
        urls_a, urls_b = _urls(first, term), _urls(second, term)
        shared = set(urls_a) & set(urls_b)
        union = set(urls_a) | set(urls_b)
        rows.append({"kind": kind, "term": term, "a": a.label, "b": b.label, "results_a": len(urls_a),
                     "results_b": len(urls_b), "shared": len(shared), "jaccard": len(shared) / len(union),
                     "shared_top10": len(set(urls_a[:10]) & set(urls_b[:10]))})
    return rows


@dataclass(frozen=True)
class _Counts:
    """Each term's women and counted faces per image in one branch."""

    by_term: dict[str, tuple[np.ndarray, np.ndarray]]
    too_few: set[str]


def _counts(branch: Branch, out: Path, options: AnalyzeOptions) -> _Counts:
    layout = Layout(branch.path(out))
    by_term = {term: term_counts(layout, term, options) for term in layout.terms_with("dataset")}
    return _Counts(by_term, {term for term, (_, faces) in by_term.items() if faces.sum() < options.min_faces})


def difference_rows(
    kind: str, a: Branch, b: Branch, counts: dict[Branch, _Counts], correction: Correction, rng: np.random.Generator,
) -> list[dict]:
    """Per term both branches classified, and over all of them: corrected share of b minus a, with its interval.

    Both branches' shares in a replicate are corrected with that replicate's error rates: one classifier made both.
    """
    rows, replicate_differences = [], []
    for term, (women_a, faces_a) in counts[a].by_term.items():
        if term not in counts[b].by_term:
            continue
        women_b, faces_b = counts[b].by_term[term]
        if faces_a.sum() == 0 or faces_b.sum() == 0:
            continue
        (estimate_a, drawn_a), (estimate_b, drawn_b) = (correction.estimate(w, f, rng)
                                                        for w, f in ((women_a, faces_a), (women_b, faces_b)))
        point_a, point_b = estimate_a.corrected, estimate_b.corrected
        replicates = drawn_b - drawn_a
        replicate_differences.append(replicates)
        rows.append(_difference(kind, term, a, b, point_a, point_b, replicates,
                                term in counts[a].too_few or term in counts[b].too_few))
    if rows:
        share_a = float(np.mean([row["share_a"] for row in rows]))
        share_b = float(np.mean([row["share_b"] for row in rows]))
        rows.append(_difference(kind, ALL_TERMS, a, b, share_a, share_b, np.mean(replicate_differences, axis=0),
                                False))
    return rows


def _difference(kind: str, term: str, a: Branch, b: Branch, share_a: float, share_b: float,
                replicates: np.ndarray, too_few: bool) -> dict:
    low, high = interval(replicates)
    return {"kind": kind, "term": term, "a": a.label, "b": b.label, "share_a": share_a, "share_b": share_b,
            "difference": share_b - share_a, "low": low, "high": high, "excludes_zero": bool(low > 0 or high < 0),
            "too_few_faces": too_few}


def compare_study(out: Path, options: AnalyzeOptions = AnalyzeOptions()) -> StudyComparison:
    """Compare the analysed branches of the study at out (writing nothing)."""
    design = read_design(out)
    if design is None or len(design.branches) < 2:
        raise MissingInputError(f"{out} holds no study of several branches: run `gimg download` with several "
                                "--engine, --market or --wave values first")
    notes, summaries, sides, bands, analysed, models = [], [], [], [], [], set()
    for branch in design.branches:
        layout = Layout(branch.path(out))
        summary = _read_table(layout.summary_csv)
        if summary is None or not layout.analysis_json.is_file():
            notes.append(f"{branch.label} is not analysed yet: run `gimg pipeline` or `gimg analyze` on it")
            continue
        analysis = json.loads(layout.analysis_json.read_text(encoding="utf-8"))
        if analysis["options"] != json.loads(json.dumps(vars(options), default=str)):
            notes.append(f"{branch.label} was analysed with other options than this comparison: rerun `gimg analyze`")
        analysed.append(branch)
        models.update(analysis.get("models") or [])
        summaries.append(_summary_row(branch, analysis, summary))
        sides.append(summary.assign(**_branch_columns(branch))[SIDE_COLUMNS])
        band_table = _read_table(layout.rank_bands_csv)
        if band_table is not None:
            bands.append(band_table.assign(**_branch_columns(branch)))
    evaluation, _, _, evaluation_notes = choose_evaluation(options, sorted(models), Layout(out))
    notes += evaluation_notes
    rng = np.random.default_rng(options.seed)
    correction = make_correction(evaluation, options, rng)
    counts = {branch: _counts(branch, out, options) for branch in analysed}
    differences, overlaps = [], []
    for kind, a, b in pairs(analysed):
        differences += difference_rows(kind, a, b, counts, correction, rng)
        overlaps += overlap(kind, a, b, out)
    table = pd.DataFrame(differences, columns=DIFFERENCE_COLUMNS)
    band_columns = [*BRANCH_COLUMNS, *(bands[0].columns.drop(BRANCH_COLUMNS) if bands else [])]
    return StudyComparison(
        layout=Layout(out), design=design, options=options,
        branches=pd.DataFrame(summaries, columns=SUMMARY_COLUMNS),
        side_by_side=pd.concat(sides, ignore_index=True) if sides else pd.DataFrame(columns=SIDE_COLUMNS),
        differences=table[table["kind"] != "wave"].reset_index(drop=True),
        drift=table[table["kind"] == "wave"].reset_index(drop=True),
        overlap=pd.DataFrame(overlaps, columns=OVERLAP_COLUMNS),
        bands=pd.concat(bands, ignore_index=True)[band_columns] if bands else pd.DataFrame(columns=BRANCH_COLUMNS),
        evaluation=evaluation, notes=notes,
    )


def write_comparison_tables(comparison: StudyComparison) -> None:
    """OUT/comparison/: side_by_side.csv, differences.csv, drift.csv, overlap.csv, rank_bands.csv, comparison.json."""
    layout = comparison.layout
    for path, table in ((layout.side_by_side_csv, comparison.side_by_side),
                        (layout.differences_csv, comparison.differences), (layout.drift_csv, comparison.drift),
                        (layout.overlap_csv, comparison.overlap), (layout.comparison_bands_csv, comparison.bands)):
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)
    write_csv(layout.comparison_branches_csv, comparison.branches.to_dict("records"), SUMMARY_COLUMNS)
    write_json(layout.comparison_json, {
        "options": vars(comparison.options), "design": comparison.design.to_json(),
        "evaluation": comparison.evaluation.to_json() if comparison.evaluation else None,
        "notes": comparison.notes,
    })
