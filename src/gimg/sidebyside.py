"""Gender models side by side on the same labelled faces: errors, group gaps, calibration, speed, disagreements."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .classify import Classifier, load_classifier
from .crops import box_in_crop, decode_crop
from .errors import GimgError
from .evaluate import EVALUATION_TERM, age_bands, calibration, group_text, metrics_for, stage_and_crop
from .layout import Layout, atomic_path
from .options import ClassifyOptions, CropOptions, EvaluateOptions, ExecutionOptions

# Columns never used as groups: identifiers and the labels' own bookkeeping.
NOT_GROUPS = {"file", "gender", "p_female", "image", "crop", "identity", "item", "id", "name", "path"}
MAX_GROUP_VALUES = 12
RATE_COLUMNS = ["accuracy", "balanced_accuracy", "sensitivity", "specificity"]
_CHUNK = 64
GAP_RESAMPLES, GAP_SEED = 2000, 0


@dataclass(frozen=True)
class Comparison:
    """summary: one row per model; groups: one row per model and group; disagreements: faces the models split on."""

    summary: pd.DataFrame
    groups: pd.DataFrame
    disagreements: pd.DataFrame


def group_labels(labels: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The group of each face per grouping column, as text (NaN where unknown); age-like numbers become bands.

    Without columns: every column other than identifiers that holds 2 to 12 distinct values, plus `age`.
    """
    if columns is None:
        columns = [column for column in labels.columns if column.lower() not in NOT_GROUPS and
                   (column.lower() == "age" or 2 <= labels[column].nunique() <= MAX_GROUP_VALUES)]
    missing = [column for column in columns if column not in labels.columns]
    if missing:
        raise GimgError(f"no column {', '.join(missing)} in the labels to group by: they have {', '.join(labels)}")
    groups = pd.DataFrame(index=labels.index)
    for column in columns:
        groups[column] = (age_bands if column.lower() == "age" else group_text)(labels[column])
    return groups


def _checked(labels: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The labels with one p_female column per model, after checking that every model scored the same faces."""
    if not predictions:
        raise GimgError("no model to compare: give at least one model's predictions")
    missing = {"file", "gender"} - set(labels.columns)
    if missing:
        raise GimgError(f"the labels lack column(s) {', '.join(sorted(missing))}: they need file,gender")
    gender = labels.gender.astype(str).str.strip().str.lower()
    if not gender.isin(["female", "male"]).all():
        found = sorted(set(gender) - {"female", "male"})[:3]
        raise GimgError(f"the labels' gender must be female or male, found {', '.join(found)}")
    merged = labels.assign(gender=gender).reset_index(drop=True)
    for model, frame in predictions.items():
        if not {"file", "p_female"} <= set(frame.columns):
            raise GimgError(f"predictions of {model} lack file and p_female columns: pass evaluate's predictions.csv")
        if set(frame.file) != set(merged.file) or frame.file.duplicated().any():
            raise GimgError(f"{model} was not run on the same faces as the labels: compare models on one labels file")
        values = frame.set_index("file").p_female.reindex(merged.file)
        merged[f"p_female:{model}"] = pd.to_numeric(values, errors="coerce").to_numpy()
    return merged


def side_by_side(
    labels: pd.DataFrame, predictions: Mapping[str, pd.DataFrame], *, ms_per_face: Mapping[str, float] | None = None,
    group_columns: Sequence[str] | None = None, cutoff: float = 0.5,
) -> Comparison:
    """Compare models' p_female (NaN: no face found) on the same labelled faces."""
    merged = _checked(labels, predictions)
    groups = group_labels(merged[list(labels.columns)], group_columns)
    summary_rows, group_rows = [], []
    for model in predictions:
        scored = merged[["gender"]].assign(p_female=merged[f"p_female:{model}"])
        overall = metrics_for(scored, cutoff)
        found = scored.dropna(subset=["p_female"])
        truth = (found.gender == "female").to_numpy()
        ece = calibration(truth, found.p_female.to_numpy())["ece"] if len(found) else np.nan
        row = {"model": model, "faces": overall["n"], "no_face": overall["no_face"],
               **{rate: overall[rate] for rate in RATE_COLUMNS}, "ece": ece,
               "ms_per_face": (ms_per_face or {}).get(model, np.nan)}
        for column, values in groups.items():
            accuracies, counts = {}, {}
            for value in sorted(values.dropna().unique()):
                metrics = metrics_for(scored[values == value], cutoff)
                group_rows.append({"model": model, "column": column, "group": value, "faces": metrics["n"],
                                   "no_face": metrics["no_face"], **{rate: metrics[rate] for rate in RATE_COLUMNS}})
                if metrics["n"]:
                    accuracies[value] = metrics["accuracy"]
                    counts[value] = (metrics["n"], metrics["tp"] + metrics["tn"])
            if len(accuracies) > 1:
                best, worst = max(accuracies, key=accuracies.get), min(accuracies, key=accuracies.get)
                row[f"{column}_gap"] = accuracies[best] - accuracies[worst]
                row[f"{column}_gap_low"], row[f"{column}_gap_high"] = gap_interval(list(counts.values()))
                row[f"{column}_worst"] = worst
        summary_rows.append(row)
    disagreements = _disagreements(merged, list(predictions), cutoff)
    return Comparison(pd.DataFrame(summary_rows), pd.DataFrame(group_rows), disagreements)


def gap_interval(counts: list[tuple[int, int]]) -> tuple[float, float]:
    """95% bootstrap interval of the gap between the best and worst group's accuracy.

    counts holds (faces, correct) per group; each replicate redraws every group's faces (a binomial draw at its
    observed accuracy). It shows how large a gap chance alone makes with groups of these sizes.
    """
    rng = np.random.default_rng(GAP_SEED)
    faces = np.array([n for n, _ in counts])
    correct = rng.binomial(faces, np.array([right / n for n, right in counts]), size=(GAP_RESAMPLES, len(counts)))
    gaps = (correct / faces).max(axis=1) - (correct / faces).min(axis=1)
    low, high = np.percentile(gaps, [2.5, 97.5])
    return float(low), float(high)


def _disagreements(merged: pd.DataFrame, models: list[str], cutoff: float) -> pd.DataFrame:
    """Faces that every model found but that not all call the same gender, most contested first."""
    scores = merged[[f"p_female:{model}" for model in models]]
    said_female = scores >= cutoff
    found = scores.notna().all(axis=1)
    split = found & said_female.any(axis=1) & ~said_female.all(axis=1)
    spread = (scores.max(axis=1) - scores.min(axis=1))[split]
    return merged[split].assign(spread=spread).sort_values("spread", ascending=False).reset_index(drop=True)


def time_backends(backends: Mapping[str, object], crops: list, *, runs: int = 1, chunk: int = _CHUNK,
                  prepare: Callable[[list], list] | None = None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Each backend's p_female of (RGB crop, box) pairs, and its median CPU ms per face over runs.

    The backends run on this thread (gimg's workers are single-threaded), so their CPU time is what they cost
    and other processes on a loaded machine change it little; they take turns on each chunk of 64 faces (as
    classify batches them), in an order that rotates from chunk to chunk, so what load remains affects them
    alike. prepare, when given, turns each chunk of crops into (RGB crop, box) pairs inside the timed part (for
    instance decoding JPEG crops, as the classify stage does).
    """
    names = list(backends)
    if not crops:
        return {name: np.zeros(0) for name in names}, {name: float("nan") for name in names}
    prepare = prepare or (lambda part: part)
    for backend in backends.values():
        backend.predict(prepare(crops[:1]))  # the first call pays for lazy set-up, which a long run amortises
    timings: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(max(1, runs)):
        spent, parts = dict.fromkeys(names, 0.0), {name: [] for name in names}
        for turn, first in enumerate(range(0, len(crops), chunk)):
            for name in names[turn % len(names):] + names[: turn % len(names)]:
                start = time.process_time()
                parts[name].append(backends[name].predict(prepare(crops[first : first + chunk])))
                spent[name] += time.process_time() - start
        for name in names:
            timings[name].append(spent[name] * 1000 / len(crops))
    p_female = {name: np.concatenate(parts[name]) for name in names}
    return p_female, {name: float(np.median(values)) for name, values in timings.items()}


def write_comparison(comparison: Comparison, out: Path) -> dict[str, Path]:
    """comparison.csv, comparison_groups.csv and disagreements.csv in out, each written atomically."""
    paths = Layout(out).comparison_csvs
    for key, path in paths.items():
        with atomic_path(path) as temporary:
            getattr(comparison, key).to_csv(temporary, index=False)
    return paths


@dataclass(frozen=True)
class ModelsEvaluation:
    """The comparison, each model's predictions (labels + p_female, NaN without a face), and where they went."""

    comparison: Comparison
    predictions: dict[str, pd.DataFrame]
    paths: dict[str, Path]


def compare_backends(
    labels_csv: Path, backends: Mapping[str, Classifier], out: Path, options: EvaluateOptions = EvaluateOptions(),
    crop: CropOptions = CropOptions(), execution: ExecutionOptions = ExecutionOptions(), *,
    group_columns: Sequence[str] | None = None, timing_runs: int = 1,
) -> ModelsEvaluation:
    """Crop the labelled images once with the real crop stage, then run every backend on the same faces.

    backends maps a display name to a loaded gender model. Each model's ms per face is timed here, in this
    process, on the biggest face of each image (time_backends, the median of timing_runs passes).
    """
    staged, biggest = stage_and_crop(labels_csv, out, options, crop, execution)
    folder = Layout(out).cropped(EVALUATION_TERM)
    crops = [(decode_crop((folder / row["file"]).read_bytes()), box_in_crop(row)) for row in biggest.to_dict("records")]
    p_female, timings = time_backends(backends, crops, runs=timing_runs)
    predictions = {}
    for name in backends:
        scored = pd.DataFrame({"image": biggest.image.to_numpy(), "crop": biggest.file.to_numpy(),
                               "p_female": p_female[name]})
        predictions[name] = staged.merge(scored, on="image", how="left")
    labels = staged.drop(columns="image")
    comparison = side_by_side(labels, predictions, ms_per_face=timings, group_columns=group_columns,
                              cutoff=options.cutoff)
    return ModelsEvaluation(comparison, predictions, write_comparison(comparison, Path(out)))


def evaluate_models(
    labels_csv: Path, models: Mapping[str, ClassifyOptions], out: Path, options: EvaluateOptions = EvaluateOptions(),
    crop: CropOptions = CropOptions(), execution: ExecutionOptions = ExecutionOptions(),
) -> ModelsEvaluation:
    """`gimg evaluate` with several models: each loaded by its options, then compared on the same faces."""
    return compare_backends(labels_csv, {name: load_classifier(model) for name, model in models.items()}, out,
                            options, crop, execution)


def describe(comparison: Comparison) -> str:
    """The side-by-side table as text: one row per model, rates, calibration, speed and the group gaps."""
    table = comparison.summary.copy()
    for gap in [column for column in table.columns if column.endswith("_gap")]:
        table[gap] = [f"{value:.3f} ({low:.3f}-{high:.3f}, worst {worst})" if value == value else ""
                      for value, low, high, worst in zip(table[gap], table[f"{gap}_low"], table[f"{gap}_high"],
                                                          table[gap.removesuffix("_gap") + "_worst"])]
    shown = [column for column in table.columns if not column.endswith(("_gap_low", "_gap_high", "_worst"))]
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 60):
        return table[shown].round(3).to_string(index=False)
