"""Analyze: per term, the share of women among the faces a policy keeps, corrected for the classifier's errors,
with bootstrap intervals, compared with the census; written as a summary table and analysis.json.

This module computes; figures.py and report.py draw and write up its results, and import it, never the reverse.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .correction import (
    ComparisonIntervals,
    Correction,
    Evaluation,
    compare_with_census,
    correlate,
    default_evaluation_path,
    load_evaluation,
    make_correction,
)
from .coded import analyze_codes
from .errors import GimgError, MissingInputError
from .layout import Layout, ModelDir, atomic_path, settings_path, write_csv, write_json
from .literature import PERMUTATIONS, RANK_BAND_COLUMNS, Literature, classified_literature, coded_literature
from .options import AnalyzeOptions
from .ranks import TERM_COLUMNS
from .screening import flag_sparse_terms

CENSUS_COLUMNS = ["term", "bls_occupation", "bls_share_women", "bls_employed_thousands", "source"]
SUMMARY_COLUMNS = [
    "term", "images", "images_with_face", "women", "share_women", "census_share_women", "difference",
    "faces", "share_low", "share_high", "corrected_share", "corrected_low", "corrected_high", "clipped",
    "corrected_difference", "too_few_faces", "sparse",
]
DATASET_COLUMNS = ["image", "file", "left", "top", "right", "bottom", "p_female", "model"]
STRIP_FACES = 30  # faces per term in the report's strips
SHIPPED_CENSUS = "professions.csv"


@dataclass
class AnalysisResult:
    """Everything `gimg analyze` computed, with the options it ran with and the output tree it reads and writes.

    The correlations and the mean difference use the corrected shares of the terms with a census share and at
    least options.min_faces faces. strips maps each term to (crop path, p_female) of the faces its report strip
    shows. census names the census table used.
    """

    summary: pd.DataFrame
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    n_terms: int
    layout: Layout
    options: AnalyzeOptions
    census: str
    correlation_note: str
    without_census: list[str]
    not_classified: list[str]
    models: list[str]
    evaluation: Evaluation | None = None
    evaluation_source: str = ""
    evaluation_domain: str = ""  # where its rates were measured: "study" (its own faces), "shipped" or "file"
    pearson_ci: tuple[float, float] = (math.nan, math.nan)
    spearman_ci: tuple[float, float] = (math.nan, math.nan)
    mean_difference: float = math.nan
    mean_difference_ci: tuple[float, float] = (math.nan, math.nan)
    notes: list[str] = field(default_factory=list)
    strips: dict[str, list[tuple[Path, float]]] = field(default_factory=dict)
    literature: Literature | None = None  # ranks and Kay et al.'s exaggeration model
    coded: bool = False  # the genders were coded by people (gimg analyze --codes), not classified

    @property
    def report_html(self) -> Path:
        return self.layout.report_html


def box_side(faces: pd.DataFrame) -> pd.Series:
    """The shorter side of each face's detected box, in source-image pixels."""
    return np.minimum(faces["right"] - faces["left"], faces["bottom"] - faces["top"])


def biggest_faces(faces: pd.DataFrame) -> pd.DataFrame:
    """One row per image: its face with the largest box area (the first one listed on a tie)."""
    area = (faces["right"] - faces["left"]) * (faces["bottom"] - faces["top"])
    ranked = faces.assign(_area=area).sort_values("_area", ascending=False, kind="stable")
    return ranked.drop_duplicates("image").drop(columns="_area").sort_index()


def select_faces(faces: pd.DataFrame, options: AnalyzeOptions) -> pd.DataFrame:
    """The faces a policy counts: boxes of at least min_box px, then per image the biggest, all, or a lone face."""
    large = faces[box_side(faces) >= options.min_box]
    if options.policy == "biggest":
        return biggest_faces(large)
    if options.policy == "single":
        return large[large.groupby("image")["image"].transform("size") == 1]
    return large


@dataclass(frozen=True)
class TermFaces:
    """One term's downloaded images, how many have a face of the minimum size, and the faces the policy counts."""

    images: int
    images_with_face: int
    used: pd.DataFrame


def term_faces(manifest: pd.DataFrame, dataset: pd.DataFrame, options: AnalyzeOptions) -> TermFaces:
    """Apply a policy to one term's faces, keeping only faces of images the manifest lists as downloaded."""
    downloaded = manifest.loc[manifest["status"] == "downloaded", "file"]
    kept = dataset[dataset["image"].isin(set(downloaded))]
    with_face = kept.loc[box_side(kept) >= options.min_box, "image"].nunique()
    return TermFaces(len(downloaded), int(with_face), select_faces(kept, options))


def per_image(used: pd.DataFrame, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Women and faces counted per image (the unit the bootstrap resamples)."""
    grouped = (used["p_female"] >= cutoff).groupby(used["image"], sort=False)
    return grouped.sum().to_numpy(dtype=float), grouped.size().to_numpy(dtype=float)


def census_path(path: Path | None) -> Path:
    """The census file to use: path, or the BLS table shipped with gimg when None."""
    if path is not None:
        return Path(path)
    return Path(str(importlib.resources.files("gimg") / "data" / SHIPPED_CENSUS))


def census_name(path: Path | None) -> str:
    """How the report names a census file: its name, or that it shipped with gimg."""
    return f"{SHIPPED_CENSUS} (BLS CPS 2022, shipped with gimg)" if path is None else Path(path).name


def read_census(path: Path | None = None) -> pd.DataFrame:
    """The census table (default: the shipped professions.csv), checked: its columns, unique terms, shares in [0, 1]."""
    path = census_path(path)
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


def read_term_faces(layout: Layout, term: str, options: AnalyzeOptions) -> TermFaces:
    """A term's counted faces under these options, from its manifest and its Datasets CSV."""
    return term_faces(_read_manifest(layout, term), _read_dataset(layout, term), options)


def term_counts(layout: Layout, term: str, options: AnalyzeOptions) -> tuple[np.ndarray, np.ndarray]:
    """Women and counted faces per image of one classified term (the unit the bootstrap resamples)."""
    return per_image(read_term_faces(layout, term, options).used, options.cutoff)


def strip_faces(used: pd.DataFrame, crop_dir: Path, cap: int) -> list[tuple[Path, float]]:
    """Up to cap of a term's counted faces, ordered by p_female and spread evenly over that order."""
    ordered = used.sort_values("p_female", kind="stable")
    if len(ordered) > cap:
        ordered = ordered.iloc[np.unique(np.linspace(0, len(ordered) - 1, cap).round().astype(int))]
    return [(crop_dir / str(row.file), float(row.p_female)) for row in ordered.itertuples()]


def choose_evaluation(
    options: AnalyzeOptions, models: list[str], layout: Layout
) -> tuple[Evaluation | None, str, str, list[str]]:
    """The evaluation to correct with, where it came from, its domain, and notes on anything that makes it fit poorly.

    In order: --evaluation ("file"; "study" when it is this study's own); the study's own labelled faces
    (validation/evaluation.json, written by `gimg label report`: "study"); the validation split of the `gimg train`
    folder that classified every term ("model"); the evaluation shipped for the model ("shipped").
    """
    notes = []
    cutoff = options.cutoff
    trained = trained_evaluation(layout)
    if options.evaluation is not None:
        chosen, source = load_evaluation(options.evaluation), str(options.evaluation)
        domain = "study" if Path(options.evaluation).resolve() == layout.study_evaluation.resolve() else "file"
    elif layout.study_evaluation.is_file():
        chosen, domain = load_evaluation(layout.study_evaluation), "study"
        source = f"labels of this study's own faces ({layout.study_evaluation})"
    elif trained is not None:
        chosen, domain = load_evaluation(trained), "model"
        source = f"the validation split of the model trained in {trained.parent}"
    else:
        families = sorted({model.split(":", 1)[0] for model in models})
        default = default_evaluation_path(families[0]) if len(families) == 1 else None
        if default is None or not default.is_file():
            return None, "", "", [
                f"no evaluation of the classifier ({', '.join(models) or 'unknown'}) ships with gimg: shares are NOT "
                "corrected for its errors; run `gimg evaluate` and pass its file with --evaluation"
            ]
        chosen, source, domain = load_evaluation(default), f"shipped with gimg ({default.name})", "shipped"
    if models and any(model != chosen.model for model in models):
        notes.append(f"the evaluation is of {chosen.model}, but the faces were classified by {', '.join(models)}")
    if not math.isclose(chosen.cutoff, cutoff):
        notes.append(f"the evaluation measured the error rates at cutoff {chosen.cutoff:g}, the analysis uses "
                     f"{cutoff:g}: the correction is only approximate")
    return chosen, source, domain, notes


def trained_evaluation(layout: Layout) -> Path | None:
    """The evaluation.json of the `gimg train` folder that classified every term (as the datasets' settings record),
    or None when the terms were classified otherwise; should the folder hold another model since, the model names
    differ and choose_evaluation says so in a note."""
    folders = set()
    for term in layout.terms_with("dataset"):
        try:
            settings = json.loads(settings_path(layout.dataset(term)).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # no record of how the term was classified: nothing to go by
            return None
        folder = ModelDir(settings.get("model", ""))
        if not str(settings.get("name", "")).startswith("trained:") or not folder.evaluation_json.is_file():
            return None
        folders.add(folder.evaluation_json)
    return folders.pop() if len(folders) == 1 else None


def summarize(
    layout: Layout, datasets: dict[str, pd.DataFrame], census: pd.DataFrame, options: AnalyzeOptions,
    correction: Correction, rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, list[tuple[Path, float]]]]:
    """The summary table (SUMMARY_COLUMNS, in the order of terms), corrected-share replicates and face strips.

    All terms share each replicate's draw of the error rates (made once, in correction): one classifier makes every
    term's errors.
    """
    shares = census.set_index("term")["bls_share_women"]
    rows, replicates, strips = [], [], {}
    for term, dataset in datasets.items():
        counted = term_faces(_read_manifest(layout, term), dataset, options)
        women, faces = per_image(counted.used, options.cutoff)
        estimate, corrected = correction.estimate(women, faces, rng)
        census_share = float(shares.get(term, math.nan))
        rows.append({
            "term": term, "images": counted.images, "images_with_face": counted.images_with_face,
            "women": int(women.sum()), "share_women": estimate.share, "census_share_women": census_share,
            "difference": estimate.share - census_share, "faces": int(faces.sum()),
            "share_low": estimate.share_low, "share_high": estimate.share_high,
            "corrected_share": estimate.corrected, "corrected_low": estimate.corrected_low,
            "corrected_high": estimate.corrected_high, "clipped": estimate.clipped,
            "corrected_difference": estimate.corrected - census_share,
            "too_few_faces": int(faces.sum()) < options.min_faces,
        })
        replicates.append(corrected)
        strips[term] = strip_faces(counted.used, layout.cropped(term), STRIP_FACES)
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-1])
    return table, np.array(replicates).reshape(len(datasets), options.resamples), strips


def compared(summary: pd.DataFrame) -> pd.Series:
    """Which terms enter the comparison: a census share, a corrected share, and enough faces."""
    return summary["census_share_women"].notna() & summary["corrected_share"].notna() & ~summary["too_few_faces"]


def analyze(out: Path, options: AnalyzeOptions = AnalyzeOptions()) -> AnalysisResult:
    """Analyze every classified term under out (writing nothing).

    options.evaluation: the classifier's evaluation file (default: the study's own, validation/evaluation.json, when
    its faces were labelled; else the one gimg ships for the model in Datasets/).
    """
    census_table = read_census(options.census)
    layout = Layout(out)
    terms = layout.require_terms_with("dataset", "analyze", "classify")
    datasets = {term: _read_dataset(layout, term) for term in terms}
    models = sorted({model for dataset in datasets.values() for model in dataset["model"].dropna()})
    chosen, source, domain, notes = choose_evaluation(options, models, layout)
    rng = np.random.default_rng(options.seed)
    correction = make_correction(chosen, options, rng)
    summary, replicates, strips = summarize(layout, datasets, census_table, options, correction, rng)
    notes += correction.notes({row.term: (row.women, row.faces) for row in summary.itertuples()})
    summary["sparse"] = flag_sparse_terms(summary)["sparse"].to_numpy()
    notes += [f"{term}: far fewer of its images show a face than the study's median: the engine may have served a "
              "decoy page; look at its images before trusting its share" for term in summary.loc[summary["sparse"], "term"]]

    inside = compared(summary).to_numpy()
    truth, search = summary["census_share_women"].to_numpy()[inside], summary["corrected_share"].to_numpy()[inside]
    correlation = correlate(truth, search)
    intervals = compare_with_census(truth, search, replicates[inside], rng)
    if correlation.note:
        intervals = ComparisonIntervals((math.nan,) * 2, (math.nan,) * 2, intervals.mean_difference,
                                        intervals.mean_difference_ci)
    literature = classified_literature(rank_codes(layout, datasets, options), summary[inside], replicates[inside],
                                       chosen, options, rng)
    return AnalysisResult(
        summary=summary, pearson_r=correlation.pearson_r, pearson_p=correlation.pearson_p,
        spearman_rho=correlation.spearman_rho, spearman_p=correlation.spearman_p, n_terms=correlation.n_terms,
        layout=layout, options=options, census=census_name(options.census), correlation_note=correlation.note,
        without_census=summary.loc[summary["census_share_women"].isna(), "term"].tolist(),
        not_classified=[term for term in layout.known_terms() if term not in terms],
        models=models, evaluation=chosen, evaluation_source=source, evaluation_domain=domain,
        pearson_ci=intervals.pearson, spearman_ci=intervals.spearman, mean_difference=intervals.mean_difference,
        mean_difference_ci=intervals.mean_difference_ci, notes=notes, strips=strips, literature=literature,
    )


def rank_codes(layout: Layout, datasets: dict[str, pd.DataFrame], options: AnalyzeOptions) -> pd.DataFrame:
    """One row per image with a counted face: term, its rank (from the manifest) and whether the face is a woman.

    Ranks need one face per image: under the policy `all`, an image counts with its biggest counted face.
    """
    tables = []
    for term, dataset in datasets.items():
        manifest = _read_manifest(layout, term)
        counted = biggest_faces(term_faces(manifest, dataset, options).used)
        kept = manifest[manifest["file"] != ""]
        ranks = pd.Series(pd.to_numeric(kept["rank"]).to_numpy(), index=kept["file"])
        tables.append(pd.DataFrame({"term": term, "rank": counted["image"].map(ranks).to_numpy(dtype=int),
                                    "woman": (counted["p_female"] >= options.cutoff).to_numpy()}))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["term", "rank", "woman"])


def analyze_coded_study(out: Path, options: AnalyzeOptions) -> AnalysisResult:
    """Analyze a study coded by people (options.codes: term, rank, gender[, url]) into out's analysis/, as a
    classified one, without classifier correction (writing nothing)."""
    path = Path(options.codes)
    if not path.is_file():
        raise MissingInputError(f"codes file {path} not found: pass --codes a CSV of term, rank, gender (woman/man)")
    codes = pd.read_csv(path, dtype=str, keep_default_na=False)
    study = analyze_codes(codes, read_census(options.census), options, permutations=PERMUTATIONS)
    terms = study.terms
    summary = pd.DataFrame({
        "term": terms["term"], "images": terms["images"], "images_with_face": terms["images"],
        "women": terms["women"], "share_women": terms["share_women"],
        "census_share_women": terms["census_share_women"], "difference": terms["difference"],
        "faces": terms["images"], "share_low": terms["share_low"], "share_high": terms["share_high"],
        "corrected_share": terms["share_women"], "corrected_low": terms["share_low"],
        "corrected_high": terms["share_high"], "clipped": False, "corrected_difference": terms["difference"],
        "too_few_faces": terms["too_few_images"], "sparse": False,
    }, columns=SUMMARY_COLUMNS)
    comparison = study.comparison
    return AnalysisResult(
        summary=summary, pearson_r=comparison.pearson_r, pearson_p=comparison.pearson_p,
        spearman_rho=comparison.spearman_rho, spearman_p=comparison.spearman_p, n_terms=comparison.terms,
        layout=Layout(out), options=options, census=census_name(options.census), correlation_note=comparison.note,
        without_census=study.without_census, not_classified=[], models=[],
        pearson_ci=comparison.pearson_ci, spearman_ci=comparison.spearman_ci,
        mean_difference=comparison.mean_difference, mean_difference_ci=comparison.mean_difference_ci,
        notes=[f"the genders were coded by people ({path.name}): shares are not corrected for a classifier"],
        literature=coded_literature(study), coded=True,
    )


def write_tables(result: AnalysisResult) -> None:
    """analysis/summary.csv, and analysis.json: the options, the evaluation and the comparison, for citing."""
    layout = result.layout
    layout.analysis.mkdir(parents=True, exist_ok=True)
    with atomic_path(layout.summary_csv) as temporary:
        result.summary.to_csv(temporary, index=False)
    keys = ("n_terms", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "pearson_ci", "spearman_ci",
            "mean_difference", "mean_difference_ci", "evaluation_source", "notes")
    document = {"options": vars(result.options), "census": result.census, "models": result.models,
                "evaluation": {**result.evaluation.to_json(), "domain": result.evaluation_domain}
                if result.evaluation else None,
                **{key: getattr(result, key) for key in keys}}
    if result.literature is not None:
        document.update(coded=result.coded, **result.literature.to_json())
        write_csv(layout.ranks_csv, result.literature.ranks.to_dict("records"), TERM_COLUMNS)
        write_csv(layout.rank_bands_csv, result.literature.bands.to_dict("records"), RANK_BAND_COLUMNS)
    else:  # no image has a counted face: no rank tables, and none left from an earlier analysis
        for stale in (layout.ranks_csv, layout.rank_bands_csv, layout.rank_bands_png):
            stale.unlink(missing_ok=True)
    write_json(layout.analysis_json, document)
