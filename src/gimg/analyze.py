"""Analyze: per term, the share of women among the faces a policy keeps, corrected for the classifier's errors,
with bootstrap intervals, compared with the census, and written up as a summary table, a plot and a report."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .correction import (
    ComparisonIntervals,
    Evaluation,
    compare_with_census,
    default_evaluation_path,
    draw_error_rates,
    estimate_term,
    load_evaluation,
)
from .errors import GimgError, MissingInputError
from .figures import plot_scatter
from .layout import Layout, atomic_path
from .report import STRIP_FACES, write_report

CENSUS_COLUMNS = ["term", "bls_occupation", "bls_share_women", "bls_employed_thousands", "source"]
SUMMARY_COLUMNS = [
    "term", "images", "images_with_face", "women", "share_women", "census_share_women", "difference",
    "faces", "share_low", "share_high", "corrected_share", "corrected_low", "corrected_high", "clipped",
    "corrected_difference", "too_few_faces",
]
DATASET_COLUMNS = ["image", "file", "left", "top", "right", "bottom", "p_female", "model"]
POLICIES = ("biggest", "all", "single")
MIN_TERMS = 3


@dataclass(frozen=True)
class Policy:
    """Which faces count: per image the biggest, all, or only images with exactly one face; cutoff; minimum size.

    min_face is the shorter side of the detected box in source-image pixels; smaller faces are dropped before
    the per-image rule applies. min_faces is the number of faces a term needs to enter the comparison.
    """

    faces: str = "biggest"
    cutoff: float = 0.5
    min_face: int = 0
    min_faces: int = 20

    def __post_init__(self) -> None:
        if self.faces not in POLICIES:
            raise ValueError(f"unknown face policy {self.faces!r}: choose one of {', '.join(POLICIES)}")
        if not 0 <= self.cutoff <= 1:
            raise ValueError(f"cutoff must be between 0 and 1, not {self.cutoff}")
        if self.min_face < 0 or self.min_faces < 0:
            raise ValueError("the minimum face size and the minimum number of faces must be 0 or more")


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation of search shares with census shares over n terms; note says why NaN."""

    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    n_terms: int
    note: str = ""


@dataclass
class AnalysisResult:
    """Everything `gimg analyze` computed and where it wrote it.

    The correlations and the mean difference use the corrected shares of the terms with a census share and at
    least policy.min_faces faces. strips maps each term to (crop path, p_female) of the faces its report strip shows.
    """

    summary: pd.DataFrame
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    n_terms: int
    summary_csv: Path
    scatter_png: Path
    report_html: Path
    cutoff: float
    census: Path
    correlation_note: str
    without_census: list[str]
    not_classified: list[str]
    models: list[str]
    policy: Policy = field(default_factory=Policy)
    evaluation: Evaluation | None = None
    evaluation_source: str = ""
    resamples: int = 2000
    seed: int = 0
    pearson_ci: tuple[float, float] = (math.nan, math.nan)
    spearman_ci: tuple[float, float] = (math.nan, math.nan)
    mean_difference: float = math.nan
    mean_difference_ci: tuple[float, float] = (math.nan, math.nan)
    notes: list[str] = field(default_factory=list)
    strips: dict[str, list[tuple[Path, float]]] = field(default_factory=dict)
    analysis_json: Path | None = None


def box_side(faces: pd.DataFrame) -> pd.Series:
    """The shorter side of each face's detected box, in source-image pixels."""
    return np.minimum(faces["right"] - faces["left"], faces["bottom"] - faces["top"])


def biggest_faces(faces: pd.DataFrame) -> pd.DataFrame:
    """One row per image: its face with the largest box area (the first one listed on a tie)."""
    area = (faces["right"] - faces["left"]) * (faces["bottom"] - faces["top"])
    ranked = faces.assign(_area=area).sort_values("_area", ascending=False, kind="stable")
    return ranked.drop_duplicates("image").drop(columns="_area").sort_index()


def select_faces(faces: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """The faces a policy counts: those at least min_face px, then per image the biggest, all, or a lone face."""
    large = faces[box_side(faces) >= policy.min_face]
    if policy.faces == "biggest":
        return biggest_faces(large)
    if policy.faces == "single":
        return large[large.groupby("image")["image"].transform("size") == 1]
    return large


@dataclass(frozen=True)
class TermFaces:
    """One term's downloaded images, how many have a face of the minimum size, and the faces the policy counts."""

    images: int
    images_with_face: int
    used: pd.DataFrame


def term_faces(manifest: pd.DataFrame, dataset: pd.DataFrame, policy: Policy) -> TermFaces:
    """Apply a policy to one term's faces, keeping only faces of images the manifest lists as downloaded."""
    downloaded = manifest.loc[manifest["status"] == "downloaded", "file"]
    kept = dataset[dataset["image"].isin(set(downloaded))]
    with_face = kept.loc[box_side(kept) >= policy.min_face, "image"].nunique()
    return TermFaces(len(downloaded), int(with_face), select_faces(kept, policy))


def per_image(used: pd.DataFrame, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Women and faces counted per image (the unit the bootstrap resamples)."""
    grouped = (used["p_female"] >= cutoff).groupby(used["image"], sort=False)
    return grouped.sum().to_numpy(dtype=float), grouped.size().to_numpy(dtype=float)


def correlate(census: np.ndarray, search: np.ndarray) -> Correlation:
    """Pearson and Spearman correlation of search shares with census shares, or NaN with a note saying why."""
    from scipy import stats  # imported on use: `import gimg` (and so every pool worker) stays fast

    n = len(census)
    if n < MIN_TERMS:
        note = (f"only {n} term(s) have a census share and enough faces; a correlation needs at least {MIN_TERMS}")
        return Correlation(math.nan, math.nan, math.nan, math.nan, n, note)
    if np.ptp(census) == 0 or np.ptp(search) == 0:
        note = f"the {'census' if np.ptp(census) == 0 else 'search'} shares are all equal; a correlation is undefined"
        return Correlation(math.nan, math.nan, math.nan, math.nan, n, note)
    with warnings.catch_warnings():
        # Near-constant inputs only warn about precision; the numbers are still the right ones to report.
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        pearson = stats.pearsonr(census, search)
        spearman = stats.spearmanr(census, search)
    return Correlation(
        float(pearson.statistic), float(pearson.pvalue), float(spearman.statistic), float(spearman.pvalue), n
    )


def read_census(path: Path) -> pd.DataFrame:
    """The census table (professions.csv), checked: the expected columns, unique terms, shares in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"census file {path} not found: pass --census professions.csv (columns: {', '.join(CENSUS_COLUMNS)})"
        )
    census = pd.read_csv(path, dtype={"term": str}, keep_default_na=False, na_values=[""])
    missing = [column for column in CENSUS_COLUMNS if column not in census.columns]
    if missing:
        raise MissingInputError(
            f"census file {path} lacks columns {', '.join(missing)}: it needs {', '.join(CENSUS_COLUMNS)}"
        )
    duplicated = census.loc[census["term"].duplicated(), "term"].unique().tolist()
    if duplicated:
        raise GimgError(f"census file {path} lists terms more than once ({', '.join(duplicated)}): keep one row each")
    shares = pd.to_numeric(census["bls_share_women"], errors="coerce")
    if not shares.dropna().between(0, 1).all():
        raise GimgError(f"census file {path} has bls_share_women outside [0, 1]: write shares as fractions")
    return census.assign(bls_share_women=shares)


def _read_dataset(layout: Layout, term: str) -> pd.DataFrame:
    """A term's Datasets CSV, with the columns analyze needs."""
    path = layout.dataset(term)
    dataset = pd.read_csv(path, dtype={"image": str, "file": str, "model": str})
    missing = [column for column in DATASET_COLUMNS if column not in dataset.columns]
    if missing:
        raise MissingInputError(f"{path} lacks columns {', '.join(missing)}: delete it and rerun `gimg classify`")
    return dataset


def _read_manifest(layout: Layout, term: str) -> pd.DataFrame:
    """A term's download manifest (only status and file matter here)."""
    path = layout.manifest(term)
    if not path.exists():
        raise MissingInputError(f"{path} not found: rerun `gimg download` for {term!r}")
    return pd.read_csv(path, dtype=str, keep_default_na=False)




def strip_faces(used: pd.DataFrame, crop_dir: Path, cap: int) -> list[tuple[Path, float]]:
    """Up to cap of a term's counted faces, ordered by p_female and spread evenly over that order."""
    ordered = used.sort_values("p_female", kind="stable")
    if len(ordered) > cap:
        ordered = ordered.iloc[np.unique(np.linspace(0, len(ordered) - 1, cap).round().astype(int))]
    return [(crop_dir / str(row.file), float(row.p_female)) for row in ordered.itertuples()]


def choose_evaluation(
    evaluation: Path | None, models: list[str], cutoff: float
) -> tuple[Evaluation | None, str, list[str]]:
    """The evaluation to correct with, where it came from, and notes on anything that makes it fit poorly."""
    notes = []
    if evaluation is not None:
        chosen, source = load_evaluation(evaluation), str(evaluation)
    else:
        families = sorted({model.split(":", 1)[0] for model in models})
        default = default_evaluation_path(families[0]) if len(families) == 1 else None
        if default is None or not default.is_file():
            return None, "", [
                f"no evaluation of the classifier ({', '.join(models) or 'unknown'}) ships with gimg: shares are NOT "
                "corrected for its errors; run `gimg evaluate` and pass its file with --evaluation"
            ]
        chosen, source = load_evaluation(default), f"shipped with gimg ({default.name})"
    if models and any(model != chosen.model for model in models):
        notes.append(f"the evaluation is of {chosen.model}, but the faces were classified by {', '.join(models)}")
    if not math.isclose(chosen.cutoff, cutoff):
        notes.append(f"the evaluation measured the error rates at cutoff {chosen.cutoff:g}, the analysis uses "
                     f"{cutoff:g}: the correction is only approximate")
    return chosen, source, notes


def summarize(
    layout: Layout, datasets: dict[str, pd.DataFrame], census: pd.DataFrame, policy: Policy,
    evaluation: Evaluation | None, resamples: int, rng: np.random.Generator, strip_cap: int = STRIP_FACES,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, list[tuple[Path, float]]]]:
    """The summary table (SUMMARY_COLUMNS, in the order of terms), corrected-share replicates and face strips.

    All terms share each replicate's draw of sensitivity and specificity: one classifier makes every term's errors.
    """
    shares = census.set_index("term")["bls_share_women"]
    sensitivity, specificity = draw_error_rates(evaluation, resamples, rng)
    point_rates = (evaluation.sensitivity, evaluation.specificity) if evaluation else (1.0, 1.0)
    rows, replicates, strips = [], [], {}
    for term, dataset in datasets.items():
        counted = term_faces(_read_manifest(layout, term), dataset, policy)
        women, faces = per_image(counted.used, policy.cutoff)
        estimate, corrected = estimate_term(women, faces, sensitivity, specificity, point_rates, rng)
        census_share = float(shares.get(term, math.nan))
        rows.append({
            "term": term, "images": counted.images, "images_with_face": counted.images_with_face,
            "women": int(women.sum()), "share_women": estimate.share, "census_share_women": census_share,
            "difference": estimate.share - census_share, "faces": int(faces.sum()),
            "share_low": estimate.share_low, "share_high": estimate.share_high,
            "corrected_share": estimate.corrected, "corrected_low": estimate.corrected_low,
            "corrected_high": estimate.corrected_high, "clipped": estimate.clipped,
            "corrected_difference": estimate.corrected - census_share,
            "too_few_faces": int(faces.sum()) < policy.min_faces,
        })
        replicates.append(corrected)
        strips[term] = strip_faces(counted.used, layout.cropped(term), strip_cap)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS), np.array(replicates).reshape(len(datasets), resamples), strips


def compared(summary: pd.DataFrame) -> pd.Series:
    """Which terms enter the comparison: a census share, a corrected share, and enough faces."""
    return summary["census_share_women"].notna() & summary["corrected_share"].notna() & ~summary["too_few_faces"]


def _finite(value):
    """A JSON-ready copy with NaN as null (strict JSON has no NaN) and tuples as lists."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _write_json(result: AnalysisResult) -> None:
    """analysis/analysis.json: the policy, the evaluation and the comparison, for the notebook and for citing."""
    keys = ("n_terms", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "pearson_ci", "spearman_ci",
            "mean_difference", "mean_difference_ci", "resamples", "seed", "evaluation_source", "notes")
    document = {"policy": asdict(result.policy), "census": str(result.census), "models": result.models,
                "evaluation": result.evaluation.to_json() if result.evaluation else None,
                **{key: getattr(result, key) for key in keys}}
    text = json.dumps(_finite(document), indent=2, allow_nan=False)
    with atomic_path(result.analysis_json) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")


def run_analyze(
    out: Path,
    *,
    census: Path = Path("professions.csv"),
    cutoff: float = 0.5,
    evaluation: Path | None = None,
    face_policy: str = "biggest",
    min_face: int = 0,
    min_faces: int = 20,
    resamples: int = 2000,
    seed: int = 0,
) -> AnalysisResult:
    """Analyze every classified term under out: write analysis/summary.csv, analysis.json, scatter.png, report.html.

    evaluation: the classifier's evaluation file (default: the one gimg ships for the model in Datasets/).
    """
    policy = Policy(face_policy, cutoff, min_face, min_faces)
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100 for a 95% interval, not {resamples}")
    census_table = read_census(census)
    layout = Layout(out)
    terms = layout.require_terms_with("dataset", "analyze", "classify")
    datasets = {term: _read_dataset(layout, term) for term in terms}
    models = sorted({model for dataset in datasets.values() for model in dataset["model"].dropna()})
    chosen, source, notes = choose_evaluation(evaluation, models, cutoff)
    rng = np.random.default_rng(seed)
    summary, replicates, strips = summarize(layout, datasets, census_table, policy, chosen, resamples, rng)

    inside = compared(summary).to_numpy()
    truth, search = summary["census_share_women"].to_numpy()[inside], summary["corrected_share"].to_numpy()[inside]
    correlation = correlate(truth, search)
    intervals = compare_with_census(truth, search, replicates[inside], rng)
    if correlation.note:
        intervals = ComparisonIntervals((math.nan,) * 2, (math.nan,) * 2, intervals.mean_difference,
                                        intervals.mean_difference_ci)
    result = AnalysisResult(
        summary=summary, pearson_r=correlation.pearson_r, pearson_p=correlation.pearson_p,
        spearman_rho=correlation.spearman_rho, spearman_p=correlation.spearman_p, n_terms=correlation.n_terms,
        summary_csv=layout.analysis / "summary.csv", scatter_png=layout.analysis / "scatter.png",
        report_html=layout.analysis / "report.html", cutoff=cutoff, census=Path(census),
        correlation_note=correlation.note,
        without_census=summary.loc[summary["census_share_women"].isna(), "term"].tolist(),
        not_classified=[term for term in layout.known_terms() if term not in terms],
        models=models, policy=policy, evaluation=chosen, evaluation_source=source, resamples=resamples, seed=seed,
        pearson_ci=intervals.pearson, spearman_ci=intervals.spearman, mean_difference=intervals.mean_difference,
        mean_difference_ci=intervals.mean_difference_ci, notes=notes, strips=strips,
        analysis_json=layout.analysis / "analysis.json",
    )
    png = plot_scatter(result)
    layout.analysis.mkdir(parents=True, exist_ok=True)
    with atomic_path(result.summary_csv) as temporary:
        summary.to_csv(temporary, index=False)
    _write_json(result)
    with atomic_path(result.scatter_png) as temporary:
        temporary.write_bytes(png)
    write_report(result, png)
    return result
