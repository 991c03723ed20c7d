"""The gimg command line: flags built from the options model, the library called, the outcome told through logging."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import Field, fields
from pathlib import Path

import click

from . import __version__
from .errors import GimgError
from .layout import Layout
from .options import (
    COUNTING,
    AnalyzeOptions,
    ClassifyOptions,
    CropOptions,
    DownloadOptions,
    EvaluateOptions,
    ExecutionOptions,
    ExplainOptions,
    Options,
    SampleOptions,
    ServeOptions,
    StudyConfig,
    TrainOptions,
    flag,
    pick,
)
from .outcome import TermOutcome

log = logging.getLogger("gimg")


class _Console(logging.Handler):
    """Progress and results to standard output, warnings and errors to standard error, one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        prefix = "warning: " if record.levelno == logging.WARNING else ""
        stream.write(f"{prefix}{record.getMessage()}\n")
        stream.flush()


def configure_logging(level: int) -> None:
    """Send gimg's log to the console at level (INFO by default, DEBUG with -v, ERROR with -q)."""
    logger = logging.getLogger("gimg")
    if not any(isinstance(handler, _Console) for handler in logger.handlers):
        logger.addHandler(_Console())
    logger.setLevel(level)
    logger.propagate = False


def _compose(*decorators: Callable) -> Callable:
    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def _click_type(item: Field) -> click.ParamType | None:
    meta = item.metadata
    if meta["multiple"]:
        return None  # a comma-separated list, each value checked by the options object
    if meta["choices"] is not None:
        return click.Choice(meta["choices"])
    kind = meta["kind"]
    if kind is Path:
        return click.Path(path_type=Path)
    if kind in (int, float) and (meta["low"], meta["high"]) == (None, None):
        return click.INT if kind is int else click.FLOAT
    if kind is int:
        return click.IntRange(min=meta["low"], max=meta["high"])
    if kind is float:
        return click.FloatRange(min=meta["low"], max=meta["high"])
    return None


def _click_option(item: Field) -> Callable:
    """The flag of one options field: its type, default, help and GIMG_<NAME> environment variable."""
    name = flag(item)
    meta = item.metadata
    declaration = f"{name}/--no-{name[2:]}" if meta["kind"] is bool else name
    choices = f" [one or more of: {','.join(meta['choices'])}]" if meta["multiple"] and meta["choices"] else ""
    return click.option(
        declaration, item.name, type=_click_type(item), default=item.default, show_default=item.default is not None,
        help=meta["help"] + choices, envvar=f"GIMG_{item.name.upper()}",
    )


def options_of(*sections: type[Options], skip: tuple[str, ...] = ()) -> Callable:
    """Every field of the given options classes (but those named in skip) as click options."""
    return _compose(*(_click_option(item) for section in sections for item in fields(section) if item.name not in skip))


def _load_config(context: click.Context, _: click.Parameter, value: Path | None) -> None:
    """A study file's values become the defaults: GIMG_* variables and flags override them."""
    if value is not None:
        from .studyfile import read_study

        context.default_map = {**(context.default_map or {}), **read_study(value)}


config_option = click.option(
    "--config", type=click.Path(dir_okay=False, path_type=Path), is_eager=True, expose_value=False,
    callback=_load_config, help="Study file (TOML) that sets any option; GIMG_* variables and flags override it.",
)
terms_argument = click.argument("terms", required=False, type=click.Path(dir_okay=False, path_type=Path))


def out_option(default: str, help: str) -> Callable:
    return click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path(default),
                        show_default=True, envvar="GIMG_OUT", help=help)


study_out = out_option(".", "Folder that holds Downloaded_images/, Cropped_faces/, Datasets/ and analysis/.")


def need_terms(terms: Path | None) -> Path:
    """The terms file given as TERMS or by the study file."""
    if terms is None:
        raise GimgError("no terms: give TERMS (a text file, one search term per line) or `terms` in --config")
    return terms


def report(stage: str, outcomes: list[TermOutcome]) -> list[TermOutcome]:
    """Log one line per term (skipped ones with -v) and a summary line; return the failures."""
    for outcome in outcomes:
        line = f"{stage}: {outcome.term}: {outcome.status}{': ' + outcome.detail if outcome.detail else ''}"
        levels = {"done": logging.INFO, "skipped": logging.DEBUG, "busy": logging.INFO}
        log.log(levels.get(outcome.status, logging.ERROR), line)
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "busy", "failed")}
    busy = f", {counts['busy']} in progress elsewhere" if counts["busy"] else ""  # not a failure: exit 0
    log.info(f"{stage}: {counts['done']} done, {counts['skipped']} already done{busy}, {counts['failed']} failed")
    return [outcome for outcome in outcomes if outcome.status == "failed"]


def finish(failures: list[TermOutcome]) -> None:
    """Exit 1 when some terms failed, after the others went on."""
    if failures:
        log.error(f"gimg: {len(failures)} term(s) failed (see above); rerun the same command to resume")
        sys.exit(1)


def record(command: str, out: Path, config: StudyConfig, sections: tuple[str, ...], terms: Path | None = None):
    """Leave the resolved options of this run in OUT/runs/."""
    from .studyfile import record_run

    record_run(out, command, {name: getattr(config, name) for name in sections}, terms)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "GIMG"})
@click.version_option(__version__, prog_name="gimg")
@click.option("-v", "--verbose", is_flag=True, help="Also log retries, host pauses and the work skipped.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
def cli(verbose: bool, quiet: bool) -> None:
    """Measure how image search portrays occupations by gender, and compare with the census.

    Every option can also be set in a study file (--config study.toml) or as GIMG_<OPTION> in the environment.

    Example: gimg pipeline professions.txt --limit 100
    """
    configure_logging(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)


@cli.command()
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
    from .layout import read_terms
    from .pipeline import run_study_download

    config = StudyConfig.from_flat(values)
    terms = need_terms(terms)
    read_terms(terms)
    record("download", out, config, ("download", "execution"), terms)
    outcomes = run_study_download(terms, out, config.download, config.execution, on_stage=report)
    finish([outcome for branch in outcomes.values() for outcome in branch if outcome.status == "failed"])


# Download options that mean nothing to a search without downloads.
DOWNLOAD_ONLY = ("urls", "max_per_host", "min_success", "wave", "retry_failed")


@cli.command()
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
    from .search import run_search

    config = StudyConfig.from_flat(values)
    terms = need_terms(terms)
    record("search", out, config, ("download", "execution"), terms)
    result = run_search(terms, out, config.download, config.execution)
    failures = []
    for label, outcomes in result.outcomes.items():
        failures += report(f"search [{label}]" if len(result.outcomes) > 1 else "search", outcomes)
    log.info(f"search: wrote {result.path}")
    finish(failures)


@cli.command()
@study_out
@config_option
@options_of(CropOptions, ExecutionOptions)
def crop(out: Path, **values) -> None:
    """Detect, landmark and crop the faces of every downloaded term.

    Example: gimg crop --out study1 --detector hog --upsample 1
    """
    from .executors import executor_for
    from .faces import run_crop
    from .pipeline import run_each_branch

    config = StudyConfig.from_flat(values)
    record("crop", out, config, ("crop", "execution"))
    with executor_for(config.execution) as executor:  # one executor (one Ray start) for every branch
        outcomes = run_each_branch(out, "crop", lambda folder: run_crop(folder, config.crop, config.execution,
                                                                        executor=executor), on_stage=report)
    finish([outcome for outcome in outcomes if outcome.status == "failed"])


@cli.command()
@study_out
@config_option
@options_of(ClassifyOptions, ExecutionOptions)
def classify(out: Path, **values) -> None:
    """Estimate p_female for every cropped face, into Datasets/<term>.csv.

    Example: gimg classify --out study1 --model onnx
    """
    from .classify import run_classify
    from .executors import executor_for
    from .pipeline import run_each_branch

    config = StudyConfig.from_flat(values)
    record("classify", out, config, ("classify", "execution"))
    with executor_for(config.execution) as executor:  # one executor (one Ray start) for every branch
        outcomes = run_each_branch(out, "classify", lambda folder: run_classify(
            folder, config.classify, config.execution, executor=executor), on_stage=report)
    finish([outcome for outcome in outcomes if outcome.status == "failed"])


@cli.command()
@study_out
@config_option
@options_of(AnalyzeOptions)
def analyze(out: Path, **values) -> None:
    """Share of women per term, corrected for the classifier's errors, with 95% intervals, against the census.

    With --codes FILE (term, rank, gender), analyze a study coded by people instead. On a study of several
    branches (engines, markets, waves), every branch is analysed and OUT/comparison/ compares them.

    Example: gimg analyze --out study1 --policy single --min-faces 30
    """
    from .pipeline import run_study_analyze

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
    from .compare import ALL_TERMS

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


def models_option(function: Callable) -> Callable:
    """evaluate's --model, given once per model to compare, and --gpu: each model becomes its ClassifyOptions."""
    gpu = next(item for item in fields(ClassifyOptions) if item.name == "gpu")
    model = click.option("--model", "models", multiple=True, default=("onnx",), show_default=True,
                         envvar="GIMG_MODEL", help="Gender model: onnx, caffe, or a MODEL_DIR made by `gimg train`. "
                                                   "Give it more than once to compare models on the same faces.")
    return model(_click_option(gpu)(function))


@cli.command()
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@out_option("evaluation", "Folder for the staged images, the stages' outputs and evaluation.json.")
@options_of(EvaluateOptions, CropOptions, ExecutionOptions)
@models_option
def evaluate(labels: Path, out: Path, models: tuple[str, ...], gpu: bool, **values) -> None:
    """Evaluate crop + classify on labelled faces (a CSV of file,gender[,race,age]); with several --model, compare them.

    Example: gimg evaluate ../shared/data/faces/utkface/labels.csv --out utk_eval --model onnx --model utk_model
    """
    config = StudyConfig.from_flat(values)
    options = EvaluateOptions(**pick(EvaluateOptions, values))
    classifiers = {name: ClassifyOptions(model=name, gpu=gpu) for name in dict.fromkeys(models)}
    if len(classifiers) > 1:
        from .sidebyside import describe, evaluate_models

        compared = evaluate_models(labels, classifiers, out, options, config.crop, config.execution)
        log.info(f"evaluate: {len(classifiers)} models on the same faces (gap: best minus worst group's accuracy, "
                 f"95% interval)\n{describe(compared.comparison)}")
        log.info(f"evaluate: {len(compared.comparison.disagreements)} faces on which they disagree; wrote "
                 f"{', '.join(str(path) for path in compared.paths.values())}")
        return
    from .evaluate import run_evaluate

    result = run_evaluate(labels, out, options, config.crop, next(iter(classifiers.values())), config.execution)
    metrics = result.metrics
    log.info(f"evaluate: {metrics['counts']['n']} faces scored, {metrics['no_face']} images without a face")
    log.info(f"evaluate: accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, "
             f"sensitivity {metrics['sensitivity']:.3f}, specificity {metrics['specificity']:.3f}, "
             f"ECE {metrics['calibration']['ece']:.3f}")
    for column, gap in metrics["group_gaps"].items():
        log.info(f"evaluate: {column}: best {gap['best']}, worst {gap['worst']}, accuracy gap {gap['accuracy_gap']:.3f}")
    pictures = " and ".join(str(path) for path in (result.contact_sheet_path, result.heatmaps_path) if path)
    log.info(f"evaluate: wrote {result.json_path}, {pictures}")


@cli.command()
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
    from .pipeline import run_pipeline

    result = run_pipeline(terms, out, config, on_stage=report)
    if result.analyses:
        show_study(result.analyses, result.comparison)
    finish(result.failures)


@cli.command()
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
    from .localengine import DEMO_PER_TERM, DEMO_RATERS, DEMO_SHARES, label_demo, prepare_demo_site, serve_site
    from .pipeline import run_analyze

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


BOOTSTRAP = ("resamples", "seed")  # the AnalyzeOptions that `gimg label report` takes


def fields_of(section: type[Options], names: tuple[str, ...]) -> Callable:
    """Some fields of an options class as click options."""
    return _compose(*(_click_option(item) for item in fields(section) if item.name in names))


def config_for(names: tuple[str, ...]) -> Callable:
    """--config that takes only these options (and --out) from a study file, so that a name a command uses for
    something else (label sample's --seed) is not set by another section's option of that name."""

    def load(context: click.Context, _: click.Parameter, value: Path | None) -> None:
        if value is not None:
            from .studyfile import read_study

            chosen = {name: value for name, value in read_study(value).items() if name in {*names, "out"}}
            context.default_map = {**(context.default_map or {}), **chosen}

    return click.option("--config", type=click.Path(dir_okay=False, path_type=Path), is_eager=True,
                        expose_value=False, callback=load,
                        help=f"Study file (TOML) whose [analyze] {', '.join(names)} apply; flags override them.")


@cli.group()
def label() -> None:
    """Have people label a sample of the study's own faces, so that analyze corrects with the study's own errors.

    Example: gimg label sample --out study1, then gimg label serve --out study1 --rater ana
    """


@label.command("sample")
@study_out
@config_for(COUNTING)
@options_of(SampleOptions)
@fields_of(AnalyzeOptions, COUNTING)
def label_sample(out: Path, **values) -> None:
    """Draw (or grow) the sample of counted faces to label, by term and predicted class, into validation/sample.csv.

    Count faces with the options the analysis uses (--policy, --cutoff, --min-box): analyze refuses other ones.

    Example: gimg label sample --out study1 --n 300 --seed 0
    """
    from .validation import draw_sample

    options = AnalyzeOptions(**{name: values.pop(name) for name in COUNTING})
    sample = draw_sample(out, SampleOptions(**values), options)
    called = sample["predicted"].value_counts()
    log.info(f"label sample: {len(sample)} faces in {Layout(out).sample_csv} ({called.get('female', 0)} called women, "
             f"{called.get('male', 0)} called men); label them with `gimg label serve --out {out}`")


@label.command("serve")
@study_out
@options_of(ServeOptions)
def label_serve(out: Path, **values) -> None:
    """Serve the labelling page on 127.0.0.1 until Ctrl-C; every answer is saved as it is given.

    Example: gimg label serve --out study1 --rater ana --port 8765
    """
    from .labelserver import serve_labels

    serve_labels(out, ServeOptions(**values),
                 on_ready=lambda url: log.info(f"label serve: open {url} in a browser; Ctrl-C stops the page"))


@label.command("import")
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@study_out
def label_import(labels: Path, out: Path) -> None:
    """Import labels made elsewhere: a CSV of item, rater, label (female, male, unclear, not_a_person, not_a_face).

    Example: gimg label import crowd_labels.csv --out study1
    """
    from .validation import import_labels

    for rater, count in import_labels(out, labels).items():
        log.info(f"label import: {count} answers of rater {rater}")


@label.command("report")
@study_out
@config_for(BOOTSTRAP)
@fields_of(AnalyzeOptions, BOOTSTRAP)
def label_report(out: Path, **values) -> None:
    """Agreement between raters, majority labels, and the study's own error rates (validation/evaluation.json).

    Example: gimg label report --out study1
    """
    from .labelreport import run_label_report

    for line in run_label_report(out, AnalyzeOptions(**values)).lines():
        log.info(f"label report: {line}")


@cli.command()
def info() -> None:
    """Print gimg's version, its model files and their licenses, the ONNX runtime's providers and the browser.

    Example: gimg info
    """
    from .info import describe

    for label, value in describe():
        click.echo(f"{label}: {value}")


@cli.command()
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="MODEL_DIR to write: model.onnx, evaluation.json, manifest.json, and faces/ (the staged crops).")
@options_of(TrainOptions, ExecutionOptions)
def train(labels: Path, out: Path, **values) -> None:
    """Fine-tune the bundled gender net on labelled faces (file,gender[,race,age] or a study's validation sample).

    Example: gimg train ../shared/data/faces/utkface/labels.csv --out utk_model --balance race
    """
    try:
        from .train import train as train_model
    except ImportError as error:  # the onnx package of the train extra is not installed
        raise GimgError(f"gimg train needs the training extra ({error.name} is missing): "
                        "pip install 'gimg[train]'") from None

    def show(row: dict) -> None:
        log.info(f"train: epoch {row['epoch']}: loss {row['train_loss']:.4f}, validation loss "
                 f"{row['validation_loss']:.4f}, validation accuracy {row['validation_accuracy']:.3f}")

    options = TrainOptions(**pick(TrainOptions, values))
    result = train_model(labels, out, options, ExecutionOptions(**pick(ExecutionOptions, values)), on_epoch=show)
    training, metrics = result.manifest["training"], result.evaluation
    log.info(f"train: {'already trained' if result.reused else 'trained'} {result.manifest['name']} on "
             f"{training['train']} faces ({training['no_face']} without a face, {training['other_labels']} not "
             f"female or male); best epoch {training['best_epoch']} of {training['epochs_run']}")
    log.info(f"train: validation split ({training['validation']} faces): accuracy {metrics['accuracy']:.3f}, "
             f"ECE {metrics['calibration']['ece']:.3f}")
    log.info(f"train: wrote {out}; use it with --model {out}")


@cli.command()
@click.argument("faces", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@options_of(ClassifyOptions, ExplainOptions)
def explain(faces: tuple[Path, ...], **values) -> None:
    """Write a heat map beside each face image (<face>.heatmap.png): where the model's decision rests.

    Example: gimg explain study1/Cropped_faces/nurse/*_0.jpg --model onnx --method occlusion
    """
    from .classify import load_classifier
    from .explain import explain_faces

    backend = load_classifier(ClassifyOptions(**pick(ClassifyOptions, values)))
    records = explain_faces(list(faces), backend, ExplainOptions(**pick(ExplainOptions, values)))
    for record in records:
        if record.error:
            log.error(f"explain: {record.face}: failed: {record.error}")
        else:
            log.info(f"explain: {record.face}: p_female {record.p_female:.3f}, heat map {record.heatmap}")
    failed = sum(bool(record.error) for record in records)
    if failed:
        log.error(f"gimg: {failed} of {len(records)} face(s) could not be explained (see above)")
        sys.exit(1)


def main() -> None:
    """Entry point: one line and exit 2 for anything the user can fix; no tracebacks."""
    configure_logging(logging.INFO)
    try:
        sys.exit(cli.main(standalone_mode=False))
    except click.ClickException as error:
        log.error(f"gimg: error: {error.format_message()}")
        sys.exit(2)
    except (GimgError, ValueError) as error:
        log.error(f"gimg: error: {error}")
        sys.exit(2)
    except (KeyboardInterrupt, click.Abort):
        log.error("gimg: interrupted; finished work is kept, rerun the same command to resume")
        sys.exit(130)
    except Exception as error:  # last resort: a user must never see a traceback unless they ask for it
        if os.environ.get("GIMG_DEBUG"):
            raise
        log.error(f"gimg: internal error: {type(error).__name__}: {error} (set GIMG_DEBUG=1 for the traceback)")
        sys.exit(1)
