"""The stages composed: analysis written up with its figures and report, the fused crop+classify pass, the pipeline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .analyze import AnalysisResult, analyze, read_census, write_tables
from .classify import ClassifyRecord, CropClassifier, check_gpu, load_classifier, run_classify, write_dataset
from .correction import load_evaluation
from .download import run_download
from .errors import GimgError
from .faces import CropRecord, crop_terms
from .labelreport import run_label_report
from .layout import Layout, read_terms
from .options import AnalyzeOptions, ClassifyOptions, CropOptions, ExecutionOptions, StudyConfig
from .outcome import TermOutcome
from .report import write_report
from .studyfile import record_run


def run_analyze(out: Path, options: AnalyzeOptions = AnalyzeOptions()) -> AnalysisResult:
    """Analyze every classified term: analysis/summary.csv, analysis.json, scatter.png and report.html.

    When people labelled faces of the study (validation/labels/), their report is written first, so that the analysis
    corrects with the study's own error rates.
    """
    notes = report_labels(out, options)
    result = analyze(out, options)
    result.notes[:0] = notes
    write_tables(result)
    write_report(result)
    return result


def report_labels(out: Path, options: AnalyzeOptions = AnalyzeOptions()) -> list[str]:
    """Run `gimg label report` when there are labels; notes (not a failure) when they cannot give rates yet."""
    layout = Layout(out)
    if not layout.raters():
        return []
    try:
        run_label_report(out, options)
    except GimgError as error:
        used = (f"the rates of an earlier label report ({layout.study_evaluation}) are used"
                if layout.study_evaluation.is_file() else "the study's labels are not used")
        return [f"the labels in {layout.labels} give no error rates ({error}): {used}"]
    return []


def _fused_record(term: str, crops: list[CropRecord], name: str) -> ClassifyRecord:
    """The classify record of a term from the crop records of the fused pass."""
    errors = [record.hook_error for record in crops if record.hook_error]
    if errors:
        return ClassifyRecord(term, error=errors[0])
    faces = [row for record in crops for row in record.rows]
    rows = [{**row, "model": name} for row in faces if math.isfinite(row["p_female"])]
    return ClassifyRecord(term, rows, unreadable=len(faces) - len(rows))


def run_crop_classify(
    out: Path,
    crop: CropOptions = CropOptions(),
    classify: ClassifyOptions = ClassifyOptions(),
    execution: ExecutionOptions = ExecutionOptions(),
) -> tuple[list[TermOutcome], list[TermOutcome]]:
    """run_crop and run_classify in one pass over the images: each face is classified as its crop is written.

    Writes exactly what the two stages write (faces.csv, then the dataset), so either can rerun alone. Terms
    whose crops were already fresh are classified from their crop files, as run_classify does.
    """
    name = load_classifier(classify).name  # missing weights stop here, before any work
    layout = Layout(out)
    crop_outcomes, cropped = crop_terms(out, crop, execution, hook=CropClassifier(classify))
    fused = {term: write_dataset(layout, term, [_fused_record(term, records, name)], classify)
             for term, records in cropped.items()}
    rest = run_classify(out, classify, execution)
    classify_outcomes = [fused.get(o.term, o) if o.status == "skipped" else o for o in rest]
    return crop_outcomes, classify_outcomes


@dataclass
class PipelineResult:
    """Every stage's per-term outcomes, and the analysis."""

    outcomes: dict[str, list[TermOutcome]] = field(default_factory=dict)
    analysis: AnalysisResult | None = None

    @property
    def failures(self) -> list[TermOutcome]:
        return [o for outcomes in self.outcomes.values() for o in outcomes if o.status == "failed"]


def run_pipeline(
    terms: Path | list[str],
    out: Path,
    config: StudyConfig = StudyConfig(),
    *,
    on_stage: Callable[[str, list[TermOutcome]], object] = lambda stage, outcomes: None,
) -> PipelineResult:
    """Run the four stages on terms (a terms file, or a list of terms) and record the options in OUT/runs/.

    Options that could only fail late (census, evaluation, GPU) are checked first. Crop and classify run as
    one pass over the images (run_crop_classify), with both stages' outputs.
    """
    names = read_terms(terms) if isinstance(terms, Path) else list(terms)
    read_census(config.analyze.census)
    if config.analyze.evaluation is not None:
        load_evaluation(config.analyze.evaluation)
    if config.classify.gpu:
        check_gpu(config.classify)
    record_run(out, "pipeline", config.__dict__, terms if isinstance(terms, Path) else None)
    result = PipelineResult()
    result.outcomes["download"] = run_download(names, out, config.download, config.execution)
    on_stage("download", result.outcomes["download"])
    if not Layout(out).terms_with("manifest"):
        return result  # nothing was downloaded: the failures say why, and there is nothing to crop
    result.outcomes["crop"], result.outcomes["classify"] = run_crop_classify(
        out, config.crop, config.classify, config.execution
    )
    on_stage("crop", result.outcomes["crop"])
    on_stage("classify", result.outcomes["classify"])
    result.analysis = run_analyze(out, config.analyze)
    return result
