"""The study's commands: download, search, crop, classify, analyze, the whole pipeline, and the demo."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import (
    AnalyzeOptions,
    ClassifyOptions,
    CropOptions,
    DownloadOptions,
    ExecutionOptions,
    StudyConfig,
)
from .flags import (
    config_option,
    finish,
    log,
    need_terms,
    options_of,
    out_option,
    record,
    report,
    study_out,
    terms_argument,
)

@click.command()
@terms_argument
@study_out
@config_option
@options_of(DownloadOptions, ExecutionOptions)
def download(terms: Path | None, out: Path, **values) -> None:
    """Download the top image results of each term in TERMS (a text file, one term per line).

    Example: gimg download professions.txt --engine bing --limit 200
    Several engines and markets (--engine bing,duckduckgo --market en-US,en-GB) run each combination into a
    branch of its own, in the wave --wave names (see the README's study designs).
    """
    from ..layout import read_terms
    from ..pipeline import run_study_download

    config = StudyConfig.from_flat(values)
    terms = need_terms(terms)
    read_terms(terms)
    record("download", out, config, ("download", "execution"), terms)
    outcomes = run_study_download(terms, out, config.download, config.execution, on_stage=report)
    finish([outcome for branch in outcomes.values() for outcome in branch if outcome.status == "failed"])


# Download options that mean nothing to a search without downloads.
DOWNLOAD_ONLY = ("urls", "max_per_host", "min_success", "wave", "retry_failed")


@click.command()
@terms_argument
@study_out
@config_option
@options_of(DownloadOptions, ExecutionOptions, skip=DOWNLOAD_ONLY)
def search(terms: Path | None, out: Path, **values) -> None:
    """Search each term in TERMS with every engine and market, without downloading: a CSV of ranked results.

    Writes OUT/searches/<run>.csv (term, rank, url, source_page, engine, market, run), which
    `gimg download TERMS --engine urls --urls OUT/searches/<run>.csv` replays exactly, and a context record of
    each engine's requests beside it.

    Example: gimg search professions.txt --engine bing,duckduckgo --market en-US,en-GB --limit 100 --out study1
    """
    from ..search import run_search

    config = StudyConfig.from_flat(values)
    terms = need_terms(terms)
    record("search", out, config, ("download", "execution"), terms)
    result = run_search(terms, out, config.download, config.execution)
    failures = []
    for label, outcomes in result.outcomes.items():
        failures += report(f"search [{label}]" if len(result.outcomes) > 1 else "search", outcomes)
    log.info(f"search: wrote {result.path}")
    finish(failures)


@click.command()
@study_out
@config_option
@options_of(CropOptions, ExecutionOptions)
def crop(out: Path, **values) -> None:
    """Detect, landmark and crop the faces of every downloaded term.

    Example: gimg crop --out study1 --detector hog --upsample 1
    """
    from ..pipeline import run_study_crop

    config = StudyConfig.from_flat(values)
    record("crop", out, config, ("crop", "execution"))
    outcomes = run_study_crop(out, config.crop, config.execution, on_stage=report)
    finish([outcome for outcome in outcomes if outcome.status == "failed"])


@click.command()
@study_out
@config_option
@options_of(ClassifyOptions, ExecutionOptions)
def classify(out: Path, **values) -> None:
    """Estimate p_female for every cropped face, into Datasets/<term>.csv.

    Example: gimg classify --out study1 --model onnx
    """
    from ..pipeline import run_study_classify

    config = StudyConfig.from_flat(values)
    record("classify", out, config, ("classify", "execution"))
    outcomes = run_study_classify(out, config.classify, config.execution, on_stage=report)
    finish([outcome for outcome in outcomes if outcome.status == "failed"])


@click.command()
@study_out
@config_option
@options_of(AnalyzeOptions)
def analyze(out: Path, **values) -> None:
    """Share of women per term, corrected for the classifier's errors, with 95% intervals, against the census.

    With --codes FILE (term, rank, gender), analyze a study coded by people instead. On a study of several
    branches (engines, markets, waves), every branch is analysed and OUT/comparison/ compares them.

    Example: gimg analyze --out study1 --policy single --min-faces 30
    """
    from ..pipeline import run_study_analyze

    config = StudyConfig.from_flat(values)
    record("analyze", out, config, ("analyze",))
    show_study(*run_study_analyze(out, config.analyze))


def show_analysis(result, label: str = "analyze") -> None:
    """The headline numbers, any caveats, and where the report is."""
    low, high = result.pearson_ci
    log.info(f"{label}: {result.n_terms} terms compared with the census; Pearson r = {result.pearson_r:.3f} "
             f"(95% CI {low:.3f} to {high:.3f}); mean difference search - census = {result.mean_difference:+.3f}")
    if result.literature is not None:
        log.info(f"{label}: {result.literature.exaggeration_sentence()}")
        log.info(f"{label}: ranks: {result.literature.rank_test.sentence()}; van Elteren's test weighting terms by "
                 f"size: z = {result.literature.rank_test.van_elteren_z:.2f}, "
                 f"p = {result.literature.rank_test.van_elteren_p:.3f}")
    for note in result.notes:
        log.info(f"{label}: note: {note}")
    log.info(f"report: {result.report_html.resolve()}")


def _flagged(pairs) -> str:
    """How many per-term rows of a comparison table have an interval that excludes 0, as "k of n"."""
    from ..compare import ALL_TERMS

    terms = pairs[pairs["term"] != ALL_TERMS]
    return f"{int(terms['excludes_zero'].sum())} of {len(terms)}"


def show_study(analyses: dict, comparison) -> None:
    """Each branch's analysis, and the comparison of the branches when there are several."""
    for branch, result in analyses.items():
        show_analysis(result, f"analyze [{branch.label}]" if len(analyses) > 1 or comparison else "analyze")
    if comparison is not None:
        log.info(f"compare: {len(comparison.branches)} branches side by side; intervals that exclude 0: "
                 f"{_flagged(comparison.differences)} engine and market differences, "
                 f"{_flagged(comparison.drift)} changes between waves (per term)")
        for note in comparison.notes:
            log.info(f"compare: note: {note}")
        log.info(f"study report: {comparison.layout.comparison_report.resolve()}")


@click.command()
@terms_argument
@study_out
@config_option
@options_of(DownloadOptions, CropOptions, ClassifyOptions, AnalyzeOptions, ExecutionOptions)
def pipeline(terms: Path | None, out: Path, **values) -> None:
    """Run download, crop, classify and analyze in order; a rerun skips finished work.

    Example: gimg pipeline professions.txt --limit 100 --out study1
    """
    run_all(need_terms(terms), out, StudyConfig.from_flat(values))


def run_all(terms: Path, out: Path, config: StudyConfig) -> None:
    """The pipeline, reporting each stage as it ends; exit 1 at the end if a term failed anywhere."""
    from ..pipeline import run_pipeline

    result = run_pipeline(terms, out, config, on_stage=report)
    if result.analyses:
        show_study(result.analyses, result.comparison)
    finish(result.failures)


@click.command()
@out_option("demo_out", "Folder for the demo's site and the pipeline's output tree.")
@click.option("--faces", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of labelled faces (images/ and labels.csv) to serve. Default: the portraits shipped "
                   "with gimg (Face Research Lab London Set, CC BY 4.0).")
@options_of(ExecutionOptions)
def demo(out: Path, faces: Path | None, **values) -> None:
    """Run the whole pipeline against a local search engine on 127.0.0.1 that serves labelled faces, then label a
    sample of its faces by import (from the site's truth) and analyze again with the study's own error rates.

    Example: gimg demo --out demo_out
    """
    from ..localengine import DEMO_PER_TERM, DEMO_RATERS, DEMO_SHARES, label_demo, prepare_demo_site, serve_site
    from ..pipeline import run_analyze

    site, terms = prepare_demo_site(out, faces)
    with serve_site(site) as base_url:
        log.info(f"demo: a local engine serves {len(DEMO_SHARES)} terms at {base_url}; "
                 f"their true shares of women are in {site / 'index.csv'}")
        config = StudyConfig.from_flat({**values, "engine": "bing", "engine_url": base_url, "limit": DEMO_PER_TERM,
                                        "min_faces": DEMO_PER_TERM // 2})
        run_all(terms, out, config)
    imported = label_demo(out, site, config.analyze)
    log.info(f"demo: labelled {max(imported.values())} sampled faces by import from the site's truth, as "
             f"{len(DEMO_RATERS)} simulated raters ({', '.join(DEMO_RATERS)}; the noisy one swaps every "
             f"{max(DEMO_RATERS.values())}th face); analyzing again with the study's own error rates")
    show_analysis(run_analyze(out, config.analyze))
