"""Analyze: per term, the share of women among the biggest faces, joined with the census, correlated and plotted."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import GimgError, MissingInputError
from .layout import Layout, atomic_path
from .report import write_report

CENSUS_COLUMNS = ["term", "bls_occupation", "bls_share_women", "bls_employed_thousands", "source"]
SUMMARY_COLUMNS = ["term", "images", "images_with_face", "women", "share_women", "census_share_women", "difference"]
DATASET_COLUMNS = ["image", "left", "top", "right", "bottom", "p_female", "model"]
MIN_TERMS = 3


@dataclass(frozen=True)
class TermCounts:
    """What one term's search results show: kept images, images with a face, and women among their biggest faces."""

    images: int
    images_with_face: int
    women: int

    @property
    def share_women(self) -> float:
        return self.women / self.images_with_face if self.images_with_face else math.nan


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
    """Everything `gimg analyze` computed and where it wrote it."""

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


def biggest_faces(faces: pd.DataFrame) -> pd.DataFrame:
    """One row per image: its face with the largest box area (the first one listed on a tie)."""
    area = (faces["right"] - faces["left"]) * (faces["bottom"] - faces["top"])
    ranked = faces.assign(_area=area).sort_values("_area", ascending=False, kind="stable")
    return ranked.drop_duplicates("image").drop(columns="_area").sort_index()


def count_term(manifest: pd.DataFrame, faces: pd.DataFrame, cutoff: float) -> TermCounts:
    """Count one term's downloaded images, those with a face, and women (p_female >= cutoff) among biggest faces."""
    downloaded = manifest.loc[manifest["status"] == "downloaded", "file"]
    kept = faces[faces["image"].isin(set(downloaded))]
    biggest = biggest_faces(kept)
    women = int((biggest["p_female"] >= cutoff).sum())
    return TermCounts(images=len(downloaded), images_with_face=len(biggest), women=women)


def correlate(summary: pd.DataFrame) -> Correlation:
    """Correlate search shares with census shares over the terms that have both."""
    from scipy import stats  # imported on use: `import gimg` (and so every pool worker) stays fast

    both = summary.dropna(subset=["share_women", "census_share_women"])
    n = len(both)
    if n < MIN_TERMS:
        note = f"only {n} term(s) have both a search share and a census share; a correlation needs at least {MIN_TERMS}"
        return Correlation(math.nan, math.nan, math.nan, math.nan, n, note)
    census, search = both["census_share_women"].astype(float), both["share_women"].astype(float)
    if census.nunique() == 1 or search.nunique() == 1:
        note = f"the {'census' if census.nunique() == 1 else 'search'} shares are all equal; a correlation is undefined"
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


def summarize(layout: Layout, terms: list[str], census: pd.DataFrame, cutoff: float) -> tuple[pd.DataFrame, list[str]]:
    """The per-term summary table (SUMMARY_COLUMNS, in the order of terms) and the classifier models seen."""
    shares = census.set_index("term")["bls_share_women"]
    rows, models = [], set()
    for term in terms:
        dataset = _read_dataset(layout, term)
        models.update(dataset["model"].dropna())
        counts = count_term(_read_manifest(layout, term), dataset, cutoff)
        census_share = float(shares.get(term, math.nan))
        rows.append(
            {
                "term": term,
                "images": counts.images,
                "images_with_face": counts.images_with_face,
                "women": counts.women,
                "share_women": counts.share_women,
                "census_share_women": census_share,
                "difference": counts.share_women - census_share,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS), sorted(models)


def plot_scatter(summary: pd.DataFrame, correlation: Correlation) -> bytes:
    """A PNG: census share (x) against search share (y) per term, with the identity line and term labels."""
    # Imported on use: `import gimg` (and so every pool worker) would otherwise pay about a second for them.
    import seaborn as sns
    from matplotlib.figure import Figure

    both = summary.dropna(subset=["share_women", "census_share_women"])
    figure = Figure(figsize=(8, 8), dpi=100)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="search = census")
    sns.scatterplot(data=both, x="census_share_women", y="share_women", ax=axes, s=40, color="tab:purple")
    for row in both.itertuples():
        axes.annotate(
            row.term, (row.census_share_women, row.share_women), xytext=(4, 3), textcoords="offset points", fontsize=7
        )
    axes.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
    axes.set_xlabel("share of women in the occupation (BLS census)")
    axes.set_ylabel("share of women among the biggest faces in search results")
    if math.isnan(correlation.pearson_r):
        title = f"Search vs census (n = {correlation.n_terms}; no correlation: too few terms)"
    else:
        title = f"Search vs census: Pearson r = {correlation.pearson_r:.2f} (n = {correlation.n_terms})"
    axes.set_title(title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def run_analyze(out: Path, *, census: Path = Path("professions.csv"), cutoff: float = 0.5) -> AnalysisResult:
    """Analyze every classified term under out: write analysis/summary.csv, scatter.png and report.html."""
    if not 0 <= cutoff <= 1:
        raise ValueError(f"cutoff must be between 0 and 1, not {cutoff}")
    census_table = read_census(census)
    layout = Layout(out)
    terms = layout.require_terms_with("dataset", "analyze", "classify")
    summary, models = summarize(layout, terms, census_table, cutoff)
    correlation = correlate(summary)
    png = plot_scatter(summary, correlation)

    layout.analysis.mkdir(parents=True, exist_ok=True)
    result = AnalysisResult(
        summary=summary,
        pearson_r=correlation.pearson_r,
        pearson_p=correlation.pearson_p,
        spearman_rho=correlation.spearman_rho,
        spearman_p=correlation.spearman_p,
        n_terms=correlation.n_terms,
        summary_csv=layout.analysis / "summary.csv",
        scatter_png=layout.analysis / "scatter.png",
        report_html=layout.analysis / "report.html",
        cutoff=cutoff,
        census=Path(census),
        correlation_note=correlation.note,
        without_census=summary.loc[summary["census_share_women"].isna(), "term"].tolist(),
        not_classified=[term for term in layout.known_terms() if term not in terms],
        models=models,
    )
    with atomic_path(result.summary_csv) as temporary:
        summary.to_csv(temporary, index=False)
    with atomic_path(result.scatter_png) as temporary:
        temporary.write_bytes(png)
    write_report(result, png)
    return result
