"""The labels' report: agreement between raters, the majority label per item, and the study's error rates.

Writes validation/majority.csv (every labelled item: its votes, majority label and whether raters disagree) and
validation/evaluation.json (gimg's evaluation format with a `study` block; analyze corrects with it).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .correction import Evaluation, interval, write_evaluation
from .errors import GimgError
from .layout import Layout, settings_path, write_csv
from .options import AnalyzeOptions, ClassifyOptions, counting
from .studyrates import LABELS, PREDICTED, StudyCell, draw_study_rates, labels_to_halve, study_rates
from .validation import read_labels, read_sample, read_strata, sample_counting

MAJORITY_COLUMNS = ["item", "term", "raters", "votes", "majority", "disagree"]
MIN_TERM_LABELS = 10  # labelled faces a term needs in each predicted class for its own rates
TIE = "unclear"  # what a tie between labels counts as


@dataclass(frozen=True)
class Agreement:
    """Krippendorff's alpha (nominal) over the five labels and over female/male only, with the counts behind it."""

    raters: int
    items: int
    items_with_two_or_more: int
    pairable_values: int
    alpha: float
    alpha_gender: float
    percent_agreement: float
    note: str = ""
    rater_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelReport:
    """What `gimg label report` found and wrote."""

    agreement: Agreement
    majority: pd.DataFrame
    disagreements: pd.DataFrame
    evaluation: Evaluation
    per_term: pd.DataFrame
    evaluation_path: Path
    majority_path: Path

    def lines(self) -> list[str]:
        """What the report found, one line each, for a person at a terminal."""
        agreed, study = self.agreement, self.evaluation.study
        intervals, halve = study["intervals"], study["labels_to_halve_interval_width"]
        alpha = (f"Krippendorff's alpha {agreed.alpha:.3f} (female/male only {agreed.alpha_gender:.3f})"
                 if not math.isnan(agreed.alpha) else agreed.note or "agreement not measurable")
        return [
            f"{len(self.majority)} faces labelled by {agreed.raters} rater(s); {agreed.items_with_two_or_more} by two "
            f"or more; {alpha}; {len(self.disagreements)} faces with disagreement (in {self.majority_path.name})",
            *(f"{name.replace('_', ' ')} {study[name]:.3f} [{intervals[name][0]:.3f}, {intervals[name][1]:.3f}]"
              for name in ("sensitivity", "specificity", "nonperson_share", "unclear_share")),
            f"about {halve['sensitivity']['more_labels']} more labels would halve the sensitivity's interval, "
            f"{halve['specificity']['more_labels']} the specificity's",
            f"wrote {self.evaluation_path}: `gimg analyze` now corrects with these rates",
        ]


def majority_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per labelled item: raters, votes ("female:2 male:1"), the majority label (a tie is "unclear")."""
    rows = []
    for item, group in labels.groupby("item", sort=False):
        votes = Counter(group["label"])
        ranked = votes.most_common()
        top = [label for label, count in ranked if count == ranked[0][1]]
        rows.append({"item": item, "raters": len(group),
                     "votes": " ".join(f"{label}:{votes[label]}" for label in LABELS if label in votes),
                     "majority": top[0] if len(top) == 1 else TIE, "disagree": len(votes) > 1})
    return pd.DataFrame(rows, columns=["item", "raters", "votes", "majority", "disagree"])


def _alpha(value_counts: np.ndarray) -> float:
    """Nominal Krippendorff's alpha from items x values counts, NaN when it is undefined (fewer than 2 values)."""
    import krippendorff  # imported on use: only the report needs it

    pairable = value_counts[value_counts.sum(axis=1) >= 2]
    if pairable.sum() < 2 or np.count_nonzero(pairable.sum(axis=0)) < 2:
        return math.nan
    return float(krippendorff.alpha(value_counts=pairable, level_of_measurement="nominal"))


def agreement(labels: pd.DataFrame) -> Agreement:
    """Agreement between raters on the items more than one rater labelled."""
    table = pd.crosstab(labels["item"], labels["label"]).reindex(columns=list(LABELS), fill_value=0)
    counts = table.to_numpy()
    per_item = counts.sum(axis=1)
    shared = per_item >= 2
    raters = labels["rater"].nunique()
    note = "" if shared.any() else "no item has two raters yet: agreement cannot be measured"
    gender = counts[:, :2]
    return Agreement(
        raters=int(raters), items=int(len(table)), items_with_two_or_more=int(shared.sum()),
        pairable_values=int(per_item[shared].sum()), alpha=_alpha(counts), alpha_gender=_alpha(gender),
        percent_agreement=float((counts[shared].max(axis=1) == per_item[shared]).mean()) if shared.any() else math.nan,
        note=note, rater_names=tuple(sorted(labels["rater"].unique())),
    )


def build_cells(strata: pd.DataFrame, sample: pd.DataFrame, majority: pd.DataFrame) -> list[StudyCell]:
    """The design's cells: each term x predicted class with its face count and its items' majority labels."""
    labelled = sample.merge(majority[["item", "majority"]], on="item")
    counts = labelled.groupby(["term", "predicted", "majority"]).size()
    cells = []
    for row in strata.itertuples():
        got = {label: int(counts.get((row.term, row.predicted, label), 0)) for label in LABELS}
        cells.append(StudyCell(row.term, row.predicted, int(row.faces), **got))
    return cells


def _effective_counts(rate: float, replicates: np.ndarray, cap: int) -> tuple[int, int]:
    """(right, wrong) counts whose Beta posterior has about the spread of the design-based replicates."""
    variance = float(np.nanvar(replicates))
    n = cap if variance == 0 else min(cap, max(1, round(rate * (1 - rate) / variance - 3)))
    right = min(n, max(0, round(rate * n)))
    return right, n - right


def _term_rows(cells: list[StudyCell]) -> pd.DataFrame:
    """Per term: faces, labelled faces, shares of non-person and unclear faces, and its own rates when it has
    at least MIN_TERM_LABELS labelled faces in each predicted class (else null)."""
    rows = []
    for term in dict.fromkeys(cell.term for cell in cells):
        own = [cell for cell in cells if cell.term == term]
        enough = all(cell.labelled >= MIN_TERM_LABELS for cell in own if cell.faces)
        labelled = sum(cell.labelled for cell in own)
        row = {"term": term, "faces": sum(cell.faces for cell in own), "labelled": labelled, "enough": enough}
        for cell in own:
            row[f"labelled_called_{cell.predicted}"] = cell.labelled
        rates = study_rates(own).as_dict() if labelled and all(cell.labelled for cell in own if cell.faces) else {}
        row["nonperson_share"] = rates.get("nonperson_share", math.nan)
        row["unclear_share"] = rates.get("unclear_share", math.nan)
        row["sensitivity"] = rates.get("sensitivity", math.nan) if enough else math.nan
        row["specificity"] = rates.get("specificity", math.nan) if enough else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def study_evaluation(cells: list[StudyCell], agreed: Agreement, options: AnalyzeOptions, *, model: str,
                     model_version: str, dataset: str) -> Evaluation:
    """The study's Evaluation: design-weighted rates with intervals, effective counts, cells, per-term figures.

    options: the counting options the sample was drawn with (recorded, so analyze can check it counts alike), and the
    bootstrap's resamples and seed.
    """
    point = study_rates(cells)
    for rate, kind in (("sensitivity", "male"), ("specificity", "female")):
        if not math.isfinite(getattr(point, rate)):
            raise ValueError(f"the labels give no {rate} yet: no face the classifier called {kind} was labelled "
                             "female or male; label more of the sample")
    rng = np.random.default_rng(options.seed)
    draws = draw_study_rates(cells, options.resamples, rng)
    clear = {kind: sum(cell.female + cell.male for cell in cells if cell.predicted == kind) for kind in PREDICTED}
    tp, fn = _effective_counts(point.sensitivity, draws.sensitivity, cap=sum(clear.values()))
    tn, fp = _effective_counts(point.specificity, draws.specificity, cap=sum(clear.values()))
    rates = point.as_dict()
    study = {
        "domain": "study",
        "design": "stratified by term and predicted class; rates weighted by each cell's number of counted faces",
        **rates,
        "intervals": {name: interval(getattr(draws, name)) for name in rates},
        "labelled": sum(cell.labelled for cell in cells),
        "labelled_by_label": {label: sum(getattr(cell, label) for cell in cells) for label in LABELS},
        "faces": sum(cell.faces for cell in cells),
        "faces_by_predicted_class": {kind: sum(c.faces for c in cells if c.predicted == kind) for kind in PREDICTED},
        "labelled_by_predicted_class": {kind: sum(c.labelled for c in cells if c.predicted == kind)
                                        for kind in PREDICTED},
        "labels_to_halve_interval_width": labels_to_halve(cells, max(200, options.resamples // 4), rng),
        "agreement": agreed.__dict__,
        "counting": counting(options),
        "per_term": _term_rows(cells).to_dict("records"),
        "cells": [cell.__dict__ for cell in cells],
        "resamples": options.resamples,
        "seed": options.seed,
    }
    return Evaluation(
        model=model, model_version=model_version, dataset=dataset, cutoff=options.cutoff, tp=tp, fp=fp, tn=tn, fn=fn,
        provenance="gimg label report: majority labels of people on a sample of the study's own counted faces, "
                   "stratified by term and predicted class; rates weighted by the study's cell sizes; counts are "
                   "effective counts (their Beta posterior has the spread of the design-based bootstrap)",
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d"), study=study,
    )


def _model_of(out: Path, sample: pd.DataFrame) -> tuple[str, str]:
    """The classifier the sampled faces were scored by (from Datasets/), and its version text (from the options the
    datasets record they were made with)."""
    from .evaluate import model_version

    layout = Layout(out)
    terms = sample["term"].unique()
    models = sorted({str(model) for term in terms
                     for model in pd.read_csv(layout.dataset(term), usecols=["model"])["model"].dropna()})
    model = models[0] if len(models) == 1 else ", ".join(models) or "unknown"
    try:
        made_with = json.loads(settings_path(layout.dataset(terms[0])).read_text(encoding="utf-8"))["model"]
        return model, model_version(ClassifyOptions(model=made_with))
    except (OSError, ValueError, KeyError, IndexError):  # no record of the options: the name is all there is
        return model, "unknown"


def run_label_report(out: Path, options: AnalyzeOptions = AnalyzeOptions()) -> LabelReport:
    """Write validation/majority.csv and validation/evaluation.json from every rater's labels under out.

    The rates are for the faces the sample was drawn from (its counting options); options gives the bootstrap's
    resamples and seed.
    """
    layout = Layout(out)
    sample, strata, labels = read_sample(out), read_strata(out), read_labels(out)
    if labels.empty:
        raise GimgError(f"no labels in {layout.labels}: label with `gimg label serve` or `gimg label import` first")
    majority = majority_labels(labels).merge(sample[["item", "term", "order"]], on="item")
    majority = majority.sort_values("order")[MAJORITY_COLUMNS]
    model, version = _model_of(out, sample)
    agreed = agreement(labels)
    try:
        evaluation = study_evaluation(
            build_cells(strata, sample, majority), agreed, replace(options, **sample_counting(out)), model=model,
            model_version=version, dataset=f"{len(majority)} labelled faces of the study in {Path(out).resolve()}",
        )
    except ValueError as error:
        raise GimgError(str(error)) from None
    write_csv(layout.majority_csv, majority.to_dict("records"), MAJORITY_COLUMNS)
    write_evaluation(evaluation, layout.study_evaluation)
    return LabelReport(
        agreement=agreed, majority=majority,
        disagreements=majority[majority["disagree"]], evaluation=evaluation,
        per_term=pd.DataFrame(evaluation.study["per_term"]), evaluation_path=layout.study_evaluation,
        majority_path=layout.majority_csv,
    )
