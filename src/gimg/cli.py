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
from .options import (
    AnalyzeOptions,
    ClassifyOptions,
    CropOptions,
    DownloadOptions,
    EvaluateOptions,
    ExecutionOptions,
    ExplainOptions,
    Options,
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
    if meta["choices"] is not None:
        return click.Choice(meta["choices"])
    kind = meta["kind"]
    if kind is Path:
        return click.Path(path_type=Path)
    if kind is int:
        return click.IntRange(min=meta["low"], max=meta["high"])
    if kind is float:
        return click.FloatRange(min=meta["low"], max=meta["high"])
    return None


def _click_option(item: Field) -> Callable:
    """The flag of one options field: its type, default, help and GIMG_<NAME> environment variable."""
    name = flag(item)
    declaration = f"{name}/--no-{name[2:]}" if item.metadata["kind"] is bool else name
    return click.option(
        declaration, item.name, type=_click_type(item), default=item.default, show_default=item.default is not None,
        help=item.metadata["help"], envvar=f"GIMG_{item.name.upper()}",
    )


def options_of(*sections: type[Options]) -> Callable:
    """Every field of the given options classes as click options."""
    return _compose(*(_click_option(item) for section in sections for item in fields(section)))


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
        log.log({"done": logging.INFO, "skipped": logging.DEBUG}.get(outcome.status, logging.ERROR), line)
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    log.info(f"{stage}: {counts['done']} done, {counts['skipped']} already done, {counts['failed']} failed")
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
    """
    from .download import run_download
    from .layout import read_terms

    config = StudyConfig.from_flat(values)
    terms = need_terms(terms)
    names = read_terms(terms)
    record("download", out, config, ("download", "execution"), terms)
    finish(report("download", run_download(names, out, config.download, config.execution)))


@cli.command()
@study_out
@config_option
@options_of(CropOptions, ExecutionOptions)
def crop(out: Path, **values) -> None:
    """Detect, landmark and crop the faces of every downloaded term.

    Example: gimg crop --out study1 --detector hog --upsample 1
    """
    from .faces import run_crop

    config = StudyConfig.from_flat(values)
    record("crop", out, config, ("crop", "execution"))
    finish(report("crop", run_crop(out, config.crop, config.execution)))


@cli.command()
@study_out
@config_option
@options_of(ClassifyOptions, ExecutionOptions)
def classify(out: Path, **values) -> None:
    """Estimate p_female for every cropped face, into Datasets/<term>.csv.

    Example: gimg classify --out study1 --model onnx
    """
    from .classify import run_classify

    config = StudyConfig.from_flat(values)
    record("classify", out, config, ("classify", "execution"))
    finish(report("classify", run_classify(out, config.classify, config.execution)))


@cli.command()
@study_out
@config_option
@options_of(AnalyzeOptions)
def analyze(out: Path, **values) -> None:
    """Share of women per term, corrected for the classifier's errors, with 95% intervals, against the census.

    Example: gimg analyze --out study1 --policy single --min-faces 30
    """
    from .pipeline import run_analyze

    config = StudyConfig.from_flat(values)
    record("analyze", out, config, ("analyze",))
    show_analysis(run_analyze(out, config.analyze))


def show_analysis(result) -> None:
    """The headline numbers, any caveats, and where the report is."""
    low, high = result.pearson_ci
    log.info(f"analyze: {result.n_terms} terms compared with the census; Pearson r = {result.pearson_r:.3f} "
             f"(95% CI {low:.3f} to {high:.3f}); mean difference search - census = {result.mean_difference:+.3f}")
    for note in result.notes:
        log.info(f"analyze: note: {note}")
    log.info(f"report: {result.report_html.resolve()}")


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
        from .compare import describe, evaluate_models

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
    if result.analysis is not None:
        show_analysis(result.analysis)
    finish(result.failures)


@cli.command()
@out_option("demo_out", "Folder for the demo's site and the pipeline's output tree.")
@click.option("--faces", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of labelled faces (images/ and labels.csv) to serve. Default: the portraits shipped "
                   "with gimg (Face Research Lab London Set, CC BY 4.0).")
@options_of(ExecutionOptions)
def demo(out: Path, faces: Path | None, **values) -> None:
    """Run the whole pipeline against a local search engine on 127.0.0.1 that serves labelled faces.

    Example: gimg demo --out demo_out
    """
    from .localengine import DEMO_PER_TERM, DEMO_SHARES, prepare_demo_site, serve_site

    site, terms = prepare_demo_site(out, faces)
    with serve_site(site) as base_url:
        log.info(f"demo: a local engine serves {len(DEMO_SHARES)} terms at {base_url}; "
                 f"their true shares of women are in {site / 'index.csv'}")
        config = StudyConfig.from_flat({**values, "engine": "bing", "engine_url": base_url, "limit": DEMO_PER_TERM,
                                        "min_faces": DEMO_PER_TERM // 2})
        run_all(terms, out, config)


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
