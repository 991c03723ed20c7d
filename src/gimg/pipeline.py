"""The stages composed: analysis written up with its figures and report, the fused crop+classify pass, the pipeline."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .analyze import AnalysisResult, analyze, analyze_coded_study, read_census, write_tables
from .classify import ClassifyRecord, CropClassifier, check_gpu, load_classifier, run_classify, write_dataset
from .compare import StudyComparison, compare_study, write_comparison_tables
from .correction import load_evaluation
from .design import WHOLE, Branch, branch_engine, plan_run, read_design, study_branches, write_design
from .download import run_download
from .engines.record import Run
from .errors import GimgError, MissingInputError
from .executors import Executor, executor_for
from .faces import CropRecord, crop_terms, run_crop
from .labelreport import run_label_report
from .layout import ANALYZE_CLAIM, STUDY_INDEX_CLAIM, Layout, read_terms
from .options import AnalyzeOptions, ClassifyOptions, CropOptions, DownloadOptions, ExecutionOptions, StudyConfig
from .outcome import TermOutcome
from .report import write_report
from .stageclaims import StageClaims
from .studyfile import record_run
from .studyreport import write_study_report

log = logging.getLogger(__name__)
OnStage = Callable[[str, list[TermOutcome]], object]


def run_analyze(
    out: Path, options: AnalyzeOptions = AnalyzeOptions(), execution: ExecutionOptions = ExecutionOptions()
) -> AnalysisResult:
    """Analyze every classified term (or, with options.codes, a study coded by people): analysis/summary.csv,
    ranks.csv, rank_bands.csv, analysis.json, scatter.png, rank_bands.png and report.html.

    When people labelled faces of the study (validation/labels/), their report is written first, so that the analysis
    corrects with the study's own error rates. One process at a time analyzes an output folder (others wait for
    it), so that its files come from one run.
    """
    with StageClaims(out, ANALYZE_CLAIM, execution).wait_for(None, notify=lambda line: log.info(f"analyze: {line}")):
        if options.codes is not None:
            result = analyze_coded_study(out, options)
        else:
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
    *,
    executor: Executor | None = None,
) -> tuple[list[TermOutcome], list[TermOutcome]]:
    """run_crop and run_classify in one pass over the images: each face is classified as its crop is written.

    Writes exactly what the two stages write (faces.csv, then the dataset, both under the term's claim), so either
    can rerun alone. Terms whose crops were already fresh are classified from their crop files, as run_classify
    does. Both stages run on one executor (executor, or one made from execution): one Ray start.
    """
    name = load_classifier(classify).name  # missing weights stop here, before any work
    layout = Layout(out)
    fused: dict[str, TermOutcome] = {}

    def write_fused(term: str, records: list[CropRecord]) -> None:
        fused[term] = write_dataset(layout, term, [_fused_record(term, records, name)], classify)

    with executor_for(execution, executor) as executor:
        crop_outcomes = crop_terms(out, crop, execution, hook=CropClassifier(classify), on_cropped=write_fused,
                                   executor=executor)
        # with --busy skip and every term cropped elsewhere, there is no faces.csv here to classify yet
        every_term_elsewhere = _any_busy(crop_outcomes) and not layout.terms_with("faces")
        rest = [] if every_term_elsewhere else run_classify(out, classify, execution, executor=executor)
    classify_outcomes = [fused.get(o.term, o) if o.status == "skipped" else o for o in rest]
    return crop_outcomes, classify_outcomes


def _any_busy(outcomes: list[TermOutcome]) -> bool:
    return any(outcome.status == "busy" for outcome in outcomes)


@dataclass
class PipelineResult:
    """Every stage's per-term outcomes (over all branches of the run), each branch's analysis, the comparison."""

    outcomes: dict[str, list[TermOutcome]] = field(default_factory=dict)
    analyses: dict[Branch, AnalysisResult] = field(default_factory=dict)
    comparison: StudyComparison | None = None

    @property
    def failures(self) -> list[TermOutcome]:
        return [o for outcomes in self.outcomes.values() for o in outcomes if o.status == "failed"]

    @property
    def analysis(self) -> AnalysisResult | None:
        """The analysis of a run with one branch."""
        return next(iter(self.analyses.values())) if len(self.analyses) == 1 else None


def stage_name(stage: str, branch: Branch, labelled: bool) -> str:
    """How a stage on a branch is logged: "crop", or "crop [wave/engine_market]" in a study of several branches."""
    return f"{stage} [{branch.label}]" if labelled else stage


def run_study_download(
    terms: Path | list[str],
    out: Path,
    options: DownloadOptions = DownloadOptions(),
    execution: ExecutionOptions = ExecutionOptions(),
    *,
    on_stage: OnStage = lambda stage, outcomes: None,
) -> dict[Branch, list[TermOutcome]]:
    """Download terms in every branch of the run (engines x markets of its wave), each into its own output tree.

    Registers the run's wave and branches in OUT/study.json first, one process at a time (another run on the same
    folder could otherwise drop this one's branches, or put its engine in the same folder); every engine is made
    (and so checked) before any work. All branches share one run id, which their manifests and context records name.
    """
    names = read_terms(terms) if isinstance(terms, Path) else list(terms)
    run = Run.start(terms if isinstance(terms, Path) else names)
    index = StageClaims(out, STUDY_INDEX_CLAIM, execution)
    with index.wait_for(None, poll=0.1, notify=lambda line: log.info(f"download: {line}")):
        plan = plan_run(out, options, run.started)
        engines = [branch_engine(options, branch) for branch in plan.branches]
        write_design(out, plan.design)
    labelled = len(plan.design.branches) > 1
    outcomes = {}
    for branch, engine in zip(plan.branches, engines):
        outcomes[branch] = run_download(names, branch.path(out), branch.download_options(options), execution,
                                        engine=engine, run=run)
        on_stage(stage_name("download", branch, labelled), outcomes[branch])
    return outcomes


def run_each_branch(
    out: Path, stage: str, work: Callable[[Path], list[TermOutcome]], *, on_stage: OnStage = lambda s, o: None
) -> list[TermOutcome]:
    """Run one stage (work on a branch's folder) on every branch of the study at out (out itself without an index).

    In a study of several branches, a branch with nothing to work on fails alone; the others go on.
    """
    branches = study_branches(out)
    outcomes = []
    for branch in branches:
        try:
            done = work(branch.path(out))
        except MissingInputError as error:
            if len(branches) == 1:
                raise
            done = [TermOutcome(branch.label, "failed", str(error))]
        on_stage(stage_name(stage, branch, len(branches) > 1), done)
        outcomes += done
    return outcomes


def run_study_crop(
    out: Path, options: CropOptions, execution: ExecutionOptions, *, on_stage: OnStage = lambda s, o: None
) -> list[TermOutcome]:
    """`gimg crop`: every branch of the study at out, with one executor (one Ray start) for all of them."""
    with executor_for(execution) as executor:
        return run_each_branch(out, "crop", lambda folder: run_crop(folder, options, execution, executor=executor),
                               on_stage=on_stage)


def run_study_classify(
    out: Path, options: ClassifyOptions, execution: ExecutionOptions, *, on_stage: OnStage = lambda s, o: None
) -> list[TermOutcome]:
    """`gimg classify`: every branch of the study at out, with one executor (one Ray start) for all of them."""
    with executor_for(execution) as executor:
        return run_each_branch(out, "classify", lambda folder: run_classify(folder, options, execution,
                                                                            executor=executor), on_stage=on_stage)


def run_compare(out: Path, options: AnalyzeOptions = AnalyzeOptions()) -> StudyComparison:
    """Compare the branches of a study: OUT/comparison/ tables, figures and report.html."""
    comparison = compare_study(out, options)
    write_comparison_tables(comparison)
    write_study_report(comparison)
    return comparison


def run_study_analyze(
    out: Path, options: AnalyzeOptions = AnalyzeOptions()
) -> tuple[dict[Branch, AnalysisResult], StudyComparison | None]:
    """Analyze every branch of the study at out, and compare them when there are several (--codes: out alone)."""
    if options.codes is not None:
        return {WHOLE: run_analyze(out, options)}, None
    branches = study_branches(out)
    analyses = {}
    for branch in branches:
        if len(branches) > 1 and not Layout(branch.path(out)).terms_with("dataset"):
            continue  # not classified yet: the comparison says so
        analyses[branch] = run_analyze(branch.path(out), options)
    if not analyses:
        Layout(out).require_terms_with("dataset", "analyze", "classify")
    return analyses, run_compare(out, options) if len(branches) > 1 else None


def run_pipeline(
    terms: Path | list[str],
    out: Path,
    config: StudyConfig = StudyConfig(),
    *,
    on_stage: OnStage = lambda stage, outcomes: None,
) -> PipelineResult:
    """Run the four stages on terms (a terms file, or a list of terms) in every branch of the run, compare the
    study's branches when it has several, and record the options in OUT/runs/.

    Options that could only fail late (census, evaluation, GPU) are checked first. Crop and classify run as
    one pass over the images (run_crop_classify), with both stages' outputs.
    """
    if isinstance(terms, Path):
        read_terms(terms)  # a missing or empty terms file stops here, before any record or work
    read_census(config.analyze.census)
    if config.analyze.evaluation is not None:
        load_evaluation(config.analyze.evaluation)
    if config.classify.gpu:
        check_gpu(config.classify)
    record_run(out, "pipeline", config.__dict__, terms if isinstance(terms, Path) else None)
    result = PipelineResult()
    downloads = run_study_download(terms, out, config.download, config.execution, on_stage=on_stage)
    result.outcomes = {"download": [o for outcomes in downloads.values() for o in outcomes], "crop": [],
                       "classify": []}
    labelled = len(read_design(out).branches) > 1
    with executor_for(config.execution) as executor:  # one executor (one Ray start) for every branch
        for branch in downloads:
            folder = branch.path(out)
            if not Layout(folder).terms_with("manifest"):
                continue  # nothing was downloaded: the failures say why, and there is nothing to crop
            crop, classify = run_crop_classify(folder, config.crop, config.classify, config.execution,
                                               executor=executor)
            on_stage(stage_name("crop", branch, labelled), crop)
            on_stage(stage_name("classify", branch, labelled), classify)
            result.outcomes["crop"] += crop
            result.outcomes["classify"] += classify
            if _any_busy(crop) and not Layout(folder).terms_with("dataset"):
                log.info(f"{stage_name('analyze', branch, labelled)}: every term is in progress elsewhere "
                         "(--busy skip); the process doing them analyzes them")
                continue
            result.analyses[branch] = run_analyze(folder, config.analyze, config.execution)
    if labelled and result.analyses:
        result.comparison = run_compare(out, config.analyze)
    return result
