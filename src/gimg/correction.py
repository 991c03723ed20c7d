"""Misclassification correction and its uncertainty: evaluation files, Rogan-Gladen, and vectorised bootstraps."""

from __future__ import annotations

import importlib.resources
import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import GimgError, MissingInputError
from .layout import write_json
from .options import AnalyzeOptions
from .registry import resolve

EVALUATION_FORMAT = "gimg-evaluation/1"
COUNT_KEYS = ("n", "tp", "fp", "tn", "fn")
LEVEL = 0.95
MIN_TERMS = 3  # the fewest terms a correlation with the census is computed on


@dataclass(frozen=True)
class Evaluation:
    """How often a gender model is right about "female" on labelled faces: the counts, and where they come from.

    tp: women called women, fn: women called men, tn: men called men, fp: men called women, at `cutoff`.
    study: set only for rates measured on a labelled sample of the study's own faces (gimg.labelreport): the
    design-weighted rates, the sample's cells and the agreement. Its counts are then effective counts (as many
    simple-random labels as would give the same uncertainty), and its rates are the design-weighted ones.
    """

    model: str
    model_version: str
    dataset: str
    cutoff: float
    tp: int
    fp: int
    tn: int
    fn: int
    provenance: str
    created: str = ""
    study: dict | None = None

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def kind(self) -> str:
        """How a correction draws its rates (registry.CORRECTIONS): "study" for a labelled sample of the study's own
        faces (a stratified design), "counts" for plain counts of labelled faces."""
        return "study" if self.study else "counts"

    @property
    def sensitivity(self) -> float:
        """Women called women among women: the study design's estimate when there is one (NaN without women)."""
        if self.study:
            return float(self.study["sensitivity"])
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def specificity(self) -> float:
        """Men called men among men: the study design's estimate when there is one (NaN without men)."""
        if self.study:
            return float(self.study["specificity"])
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else math.nan

    def to_json(self) -> dict:
        """The evaluation file's JSON object (counts, rates, provenance; the study block when there is one)."""
        fields = asdict(self)
        counts = {key: (self.n if key == "n" else fields.pop(key)) for key in COUNT_KEYS}
        study = fields.pop("study")
        return {"format": EVALUATION_FORMAT, **fields, "positive": "female", "counts": counts,
                "sensitivity": self.sensitivity, "specificity": self.specificity,
                **({"study": study} if study else {})}


def write_evaluation(evaluation: Evaluation, path: Path, details: dict | None = None) -> None:
    """Write an evaluation file that load_evaluation reads back: the counts, then any details (per group, ...)."""
    write_json(path, {**evaluation.to_json(), **(details or {})})


def load_evaluation(path: Path) -> Evaluation:
    """Read and check an evaluation file: counts that add up, rates that match them, better than chance."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"evaluation file {path} not found: pass --evaluation a file `gimg evaluate` wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        counts = {key: int(data["counts"][key]) for key in COUNT_KEYS}
        evaluation = Evaluation(
            model=str(data["model"]), model_version=str(data["model_version"]), dataset=str(data["dataset"]),
            cutoff=float(data["cutoff"]), tp=counts["tp"], fp=counts["fp"], tn=counts["tn"], fn=counts["fn"],
            provenance=str(data["provenance"]), created=str(data.get("created", "")), study=_study_block(data),
        )
    except (ValueError, KeyError, TypeError) as error:
        problem = f"lacks {error}" if isinstance(error, KeyError) else f"is malformed ({error})"
        raise GimgError(f"evaluation file {path} {problem}: it needs model, model_version, dataset, cutoff, "
                        f"counts ({', '.join(COUNT_KEYS)}) and provenance") from None
    if data.get("positive", "female") != "female":
        raise GimgError(f"evaluation file {path} counts {data['positive']!r} as positive: gimg needs 'female'")
    if min(counts.values()) < 0 or counts["n"] != evaluation.n or not (evaluation.tp + evaluation.fn) * (
        evaluation.tn + evaluation.fp
    ):
        raise GimgError(f"evaluation file {path}: counts must be >= 0, add up to n, and include women and men")
    for rate in ("sensitivity", "specificity"):
        if rate in data and not math.isclose(float(data[rate]), getattr(evaluation, rate), abs_tol=1e-6):
            raise GimgError(f"evaluation file {path}: {rate} {data[rate]} does not match its counts")
    if evaluation.sensitivity + evaluation.specificity <= 1:
        raise GimgError(f"evaluation file {path}: sensitivity + specificity <= 1, the model is no better than chance")
    return evaluation


def _study_block(data: dict) -> dict | None:
    """The study block of an evaluation file, checked for the rates it must hold (None when absent)."""
    study = data.get("study")
    if study is None:
        return None
    if not isinstance(study, dict):
        raise TypeError("its study block is not an object")
    for rate in ("sensitivity", "specificity"):
        float(study[rate])
    return study


def default_evaluation_path(model: str) -> Path:
    """Where the package keeps the evaluation of a model family ("onnx" for "onnx:gender-v1")."""
    family = model.split(":", 1)[0]
    return Path(str(importlib.resources.files("gimg") / "data" / f"evaluation-{family}.json"))


def rogan_gladen(raw: np.ndarray | float, sensitivity: np.ndarray | float, specificity: np.ndarray | float):
    """The true share implied by an observed share: (raw + specificity - 1) / (sensitivity + specificity - 1)."""
    false_positive_rate = 1 - np.asarray(specificity)  # this form leaves raw exactly as is for a perfect model
    return (np.asarray(raw) - false_positive_rate) / (np.asarray(sensitivity) - false_positive_rate)


def draw_error_rates(evaluation: Evaluation | None, resamples: int, rng: np.random.Generator):
    """Sensitivity and specificity per replicate, from their Beta posteriors under a uniform prior (or exactly 1)."""
    if evaluation is None:
        return np.ones(resamples), np.ones(resamples)
    sensitivity = rng.beta(evaluation.tp + 1, evaluation.fn + 1, resamples)
    specificity = rng.beta(evaluation.tn + 1, evaluation.fp + 1, resamples)
    return sensitivity, specificity


def resample_shares(women: np.ndarray, faces: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The share of women in each of `resamples` resamples of the images (women and faces counted per image)."""
    women, faces = np.asarray(women, dtype=float), np.asarray(faces, dtype=float)
    if len(faces) == 0:
        return np.full(resamples, math.nan)
    picks = rng.integers(0, len(faces), size=(resamples, len(faces)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return women[picks].sum(axis=1) / faces[picks].sum(axis=1)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central percentile interval of bootstrap replicates, ignoring undefined (NaN) ones."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class TermEstimate:
    """One term's raw and corrected share of women, with bootstrap intervals; clipped says the point hit 0 or 1."""

    share: float
    share_low: float
    share_high: float
    corrected: float
    corrected_low: float
    corrected_high: float
    clipped: bool


def estimate_term(
    women: np.ndarray, faces: np.ndarray, sensitivity: np.ndarray, specificity: np.ndarray,
    point_rates: tuple[float, float], rng: np.random.Generator,
) -> tuple[TermEstimate, np.ndarray]:
    """A term's estimate and its corrected-share replicates (one per sensitivity/specificity draw)."""
    total = float(np.sum(faces))
    if total == 0:
        nan = math.nan
        return TermEstimate(nan, nan, nan, nan, nan, nan, False), np.full(len(sensitivity), nan)
    share = float(np.sum(women)) / total
    unclipped = float(rogan_gladen(share, *point_rates))
    replicates = resample_shares(women, faces, len(sensitivity), rng)
    corrected = np.clip(rogan_gladen(replicates, sensitivity, specificity), 0, 1)
    estimate = TermEstimate(share, *interval(replicates), min(max(unclipped, 0.0), 1.0), *interval(corrected),
                            clipped=not 0 <= unclipped <= 1)
    return estimate, corrected


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of x with the same row of y (NaN where a row is constant)."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    return np.clip(r, -1, 1)  # rounding can step just past +-1


@dataclass(frozen=True)
class ComparisonIntervals:
    """Bootstrap intervals of the search-vs-census statistics, and the mean signed difference's point value."""

    pearson: tuple[float, float]
    spearman: tuple[float, float]
    mean_difference: float
    mean_difference_ci: tuple[float, float]


def compare_with_census(
    census: np.ndarray, corrected: np.ndarray, replicates: np.ndarray, rng: np.random.Generator
) -> ComparisonIntervals:
    """Intervals for Pearson r, Spearman rho and the mean of (search - census) over terms.

    Each replicate resamples the terms and takes each drawn term's corrected share from the same replicate of
    the per-term bootstrap (replicates: terms x resamples), so it carries images, error rates and terms at once.
    """
    from scipy import stats  # imported on use: `import gimg` (and so every pool worker) stays fast

    census = np.asarray(census, dtype=float)
    terms, resamples = replicates.shape
    mean_difference = float(np.mean(np.asarray(corrected) - census)) if terms else math.nan
    if terms == 0:
        nan = (math.nan, math.nan)
        return ComparisonIntervals(nan, nan, math.nan, nan)
    picks = rng.integers(0, terms, size=(resamples, terms))
    search = replicates[picks, np.arange(resamples)[:, None]]
    truth = census[picks]
    pearson = _pearson_rows(truth, search)
    spearman = _pearson_rows(stats.rankdata(truth, axis=1), stats.rankdata(search, axis=1))
    differences = (search - truth).mean(axis=1)
    return ComparisonIntervals(interval(pearson), interval(spearman), mean_difference, interval(differences))


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation of search shares with census shares over n terms; note says why NaN."""

    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    n_terms: int
    note: str = ""


def correlate(census: np.ndarray, search: np.ndarray) -> Correlation:
    """Pearson and Spearman correlation of search shares with census shares, or NaN with a note saying why."""
    from scipy import stats  # imported on use: `import gimg` (and so every pool worker) stays fast

    n = len(census)
    if n < MIN_TERMS:
        note = (f"only {n} term(s) can be compared with the census; a correlation needs at least {MIN_TERMS}")
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


class Correction(Protocol):
    """How one analysis corrects every term: built once (so all terms share each replicate's error rates)."""

    def estimate(
        self, women: np.ndarray, faces: np.ndarray, rng: np.random.Generator
    ) -> tuple[TermEstimate, np.ndarray]:
        """A term's estimate and its corrected-share replicates, from women and faces counted per image."""

    def notes(self, counted: dict[str, tuple[int, int]]) -> list[str]:
        """Caveats, given each term's (faces called female, counted faces) as the analysis counted them."""


class RateCorrection:
    """Rogan-Gladen with sensitivity and specificity drawn per replicate from the Beta posteriors of an evaluation's
    counts (no correction without an evaluation)."""

    def __init__(self, evaluation: Evaluation | None, options: AnalyzeOptions, rng: np.random.Generator) -> None:
        self.draws = draw_error_rates(evaluation, options.resamples, rng)
        self.point = (evaluation.sensitivity, evaluation.specificity) if evaluation else (1.0, 1.0)

    def estimate(
        self, women: np.ndarray, faces: np.ndarray, rng: np.random.Generator
    ) -> tuple[TermEstimate, np.ndarray]:
        return estimate_term(women, faces, *self.draws, self.point, rng)

    def notes(self, counted: dict[str, tuple[int, int]]) -> list[str]:
        return []


def make_correction(evaluation: Evaluation | None, options: AnalyzeOptions, rng: np.random.Generator) -> Correction:
    """The correction for this kind of evaluation (registry.CORRECTIONS), its error rates drawn from rng."""
    return resolve("correction", evaluation.kind if evaluation else "counts")(evaluation, options, rng)
