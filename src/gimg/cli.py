"""The gimg command line: parses options, calls the library's run_* functions, reports in one line each."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from collections.abc import Callable

import click

from . import __version__
from .errors import GimgError
from .outcome import TermOutcome

ENGINE_CHOICES = ("google", "bing", "duckduckgo", "urls")
DETECTOR_CHOICES = ("blazeface", "yunet", "hog", "cnn")
MODEL_CHOICES = ("onnx", "caffe")


def _compose(*decorators: Callable) -> Callable:
    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def out_option(function: Callable) -> Callable:
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="Folder that holds Downloaded_images/, Cropped_faces/, Datasets/ and analysis/.",
    )(function)


def workers_option(function: Callable) -> Callable:
    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Worker processes (or concurrent terms for download). Default: the number of CPUs.",
    )(function)


download_options = _compose(
    click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="bing", show_default=True,
                 help="Search engine to query; `urls` replays a CSV of term,url."),
    click.option("--engine-url", default=None, metavar="URL",
                 help="Base URL of the engine (for a mirror or a local test server), e.g. http://127.0.0.1:8000."),
    click.option("--urls", "urls_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="CSV with term,url[,rank] columns, for --engine urls."),
    click.option("--limit", type=click.IntRange(min=1), default=500, show_default=True,
                 help="Number of top results to download per term."),
    click.option("--max-per-host", "per_host", type=click.IntRange(min=1), default=4, show_default=True,
                 help="Most downloads in flight to any one host, to stay polite."),
)
crop_options = _compose(
    click.option("--detector", type=click.Choice(DETECTOR_CHOICES), default="blazeface", show_default=True,
                 help="Face detector: MediaPipe BlazeFace (fast), YuNet (fast, keeps small faces), dlib HOG (the "
                      "original's) or dlib's CNN (slow without a GPU)."),
    click.option("--upsample", type=click.IntRange(min=0, max=3), default=1, show_default=True,
                 help="Times dlib's detectors upsample each image; 1 finds faces down to about 40 px."),
    click.option("--min-face", type=click.FloatRange(min=1), default=None,
                 help="Smallest face BlazeFace or YuNet looks for, in pixels. Default: BlazeFace, the larger of "
                      "36 px and 1/12 of the image's short side; YuNet, 36 px. Smaller is slower and finds more "
                      "small background faces."),
    click.option("--landmarks/--no-landmarks", default=False, show_default=True,
                 help="Also write the 68-point landmarks of each face to <crop>.txt, as the original did."),
)
classify_options = _compose(
    click.option("--model", type=click.Choice(MODEL_CHOICES), default="onnx", show_default=True,
                 help="Gender model: the bundled ONNX net, or the Levi-Hassner Caffe net in cnn_age_gender/."),
    click.option("--gpu", is_flag=True, help="Run the model on a CUDA GPU; exits 2 where there is none."),
)
analyze_options = _compose(
    click.option("--census", type=click.Path(dir_okay=False, path_type=Path), default=Path("professions.csv"),
                 show_default=True, help="CSV of term and bls_share_women (a fraction) to compare with."),
    click.option("--cutoff", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                 help="A face counts as a woman when p_female is at least this."),
)
statistics_options = _compose(
    click.option("--evaluation", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="evaluation.json (from `gimg evaluate`) whose sensitivity and specificity correct the "
                      "shares. Default: the evaluation shipped for the model named in Datasets/."),
    click.option("--policy", type=click.Choice(["biggest", "all", "single"]), default="biggest", show_default=True,
                 help="Faces counted per image: the biggest (the original), all, or only images with exactly one."),
    click.option("--min-box", type=click.IntRange(min=0), default=0, show_default=True,
                 help="Ignore faces whose box side is under this many pixels."),
    click.option("--min-faces", type=click.IntRange(min=1), default=20, show_default=True,
                 help="Terms with fewer counted faces are flagged and left out of the census comparison."),
    click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True,
                 help="Bootstrap replicates for the 95% intervals."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap."),
)
terms_argument = click.argument("terms", type=click.Path(dir_okay=False, path_type=Path))


def report(stage: str, outcomes: list[TermOutcome]) -> list[TermOutcome]:
    """Print one line per term that did work or failed, and a summary line; return the failures."""
    for outcome in outcomes:
        if outcome.status != "skipped":
            click.echo(f"{stage}: {outcome.term}: {outcome.status}{': ' + outcome.detail if outcome.detail else ''}")
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    click.echo(f"{stage}: {counts['done']} done, {counts['skipped']} already done, {counts['failed']} failed")
    return [outcome for outcome in outcomes if outcome.status == "failed"]


def finish(failures: list[TermOutcome]) -> None:
    """Exit 1 when some terms failed, after the others went on."""
    if failures:
        click.echo(f"gimg: {len(failures)} term(s) failed (see above); rerun the same command to resume", err=True)
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gimg")
def cli() -> None:
    """Measure how image search portrays occupations by gender, and compare with the census.

    Example: gimg pipeline professions.txt --limit 100
    """


@cli.command()
@terms_argument
@out_option
@download_options
@workers_option
def download(terms: Path, out: Path, engine: str, engine_url: str | None, urls_csv: Path | None,
             limit: int, per_host: int, workers: int | None) -> None:
    """Download the top image results of each term in TERMS (a text file, one term per line).

    Example: gimg download professions.txt --engine bing --limit 200
    """
    from .download import run_download
    from .layout import read_terms

    outcomes = run_download(read_terms(terms), out, engine=engine, engine_url=engine_url,
                            urls_csv=urls_csv, limit=limit, per_host=per_host, workers=workers)
    finish(report("download", outcomes))


@cli.command()
@out_option
@crop_options
@workers_option
def crop(out: Path, detector: str, upsample: int, min_face: float | None, landmarks: bool,
         workers: int | None) -> None:
    """Detect, landmark and crop the faces of every downloaded term.

    Example: gimg crop --out study1 --detector hog --upsample 1
    """
    from .faces import run_crop

    finish(report("crop", run_crop(out, detector=detector, upsample=upsample, min_face=min_face,
                                   landmarks=landmarks, workers=workers)))


@cli.command()
@out_option
@classify_options
@workers_option
def classify(out: Path, model: str, gpu: bool, workers: int | None) -> None:
    """Estimate p_female for every cropped face, into Datasets/<term>.csv.

    Example: gimg classify --out study1 --model onnx
    """
    from .classify import run_classify

    finish(report("classify", run_classify(out, model=model, gpu=gpu, workers=workers)))


@cli.command()
@out_option
@analyze_options
@statistics_options
def analyze(out: Path, census: Path, cutoff: float, evaluation: Path | None, policy: str, min_box: int,
            min_faces: int, resamples: int, seed: int) -> None:
    """Share of women per term, corrected for the classifier's errors, with 95% intervals, against the census.

    Example: gimg analyze --out study1 --census professions.csv --policy single --min-faces 30
    """
    from .analyze import run_analyze

    show_analysis(run_analyze(out, census=census, cutoff=cutoff, evaluation=evaluation, face_policy=policy,
                              min_face=min_box, min_faces=min_faces, resamples=resamples, seed=seed))


def show_analysis(result) -> None:
    """The headline numbers, any caveats, and where the report is."""
    low, high = result.pearson_ci
    click.echo(f"analyze: {result.n_terms} terms compared with the census; Pearson r = {result.pearson_r:.3f} "
               f"(95% CI {low:.3f} to {high:.3f}); mean difference search - census = {result.mean_difference:+.3f}")
    for note in result.notes:
        click.echo(f"analyze: note: {note}")
    click.echo(f"report: {result.report_html.resolve()}")


@cli.command()
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the labelled images. Default: images/ next to LABELS.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("evaluation"),
              show_default=True, help="Folder for the staged images, the stages' outputs and evaluation.json.")
@click.option("--detector", type=click.Choice(DETECTOR_CHOICES), default="blazeface", show_default=True,
              help="Face detector, as for `gimg crop`.")
@click.option("--model", type=click.Choice(MODEL_CHOICES), default="onnx", show_default=True,
              help="Gender model to evaluate, as for `gimg classify`.")
@click.option("--cutoff", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="A face counts as a woman when p_female is at least this.")
@workers_option
def evaluate(labels: Path, images: Path | None, out: Path, detector: str, model: str, cutoff: float,
             workers: int | None) -> None:
    """Evaluate crop + classify on labelled faces (a CSV of file,gender[,race,age]).

    Example: gimg evaluate ../shared/data/faces/utkface/labels.csv --out utk_eval
    """
    from .evaluate import run_evaluate

    result = run_evaluate(labels, images=images, out=out, model=model, detector=detector, cutoff=cutoff,
                          workers=workers)
    metrics = result.metrics
    click.echo(f"evaluate: {metrics['counts']['n']} faces scored, {metrics['no_face']} images without a face")
    click.echo(f"evaluate: accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, "
               f"sensitivity {metrics['sensitivity']:.3f}, specificity {metrics['specificity']:.3f}, "
               f"ECE {metrics['calibration']['ece']:.3f}")
    for column, gap in metrics["group_gaps"].items():
        click.echo(f"evaluate: {column}: best {gap['best']}, worst {gap['worst']}, "
                   f"accuracy gap {gap['accuracy_gap']:.3f}")
    click.echo(f"evaluate: wrote {result.json_path} and {result.contact_sheet_path}")


@cli.command()
@terms_argument
@out_option
@download_options
@crop_options
@classify_options
@analyze_options
@statistics_options
@workers_option
def pipeline(terms: Path, out: Path, workers: int | None, **options) -> None:
    """Run download, crop, classify and analyze in order; a rerun skips finished work.

    Example: gimg pipeline professions.txt --limit 100 --out study1
    """
    from .layout import read_terms

    run_all(read_terms(terms), out, workers=workers, **options)


def run_all(terms: list[str], out: Path, **options) -> None:
    """The pipeline, reporting each stage as it ends; exit 1 at the end if a term failed anywhere."""
    from .pipeline import run_pipeline

    result = run_pipeline(terms, out, on_stage=report, **options)
    show_analysis(result.analysis)
    finish(result.failures)


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"),
              show_default=True, help="Folder for the demo's site and the pipeline's output tree.")
@click.option("--faces", type=click.Path(file_okay=False, path_type=Path), default=Path("tests/fixtures/faces"),
              show_default=True, help="Folder of labelled face crops (images/ and labels.csv) to serve.")
@click.option("--census", type=click.Path(dir_okay=False, path_type=Path), default=Path("professions.csv"),
              show_default=True, help="CSV of term and bls_share_women to compare with.")
@workers_option
def demo(out: Path, faces: Path, census: Path, workers: int | None) -> None:
    """Run the whole pipeline against a local search engine on 127.0.0.1 that serves labelled faces.

    Example: gimg demo --out demo_out
    """
    from .localengine import DEMO_PER_TERM, DEMO_SHARES, prepare_demo_site, serve_site

    site = prepare_demo_site(out, faces)
    with serve_site(site) as base_url:
        click.echo(f"demo: a local engine serves {len(DEMO_SHARES)} terms at {base_url}; "
                   f"their true shares of women are in {site / 'index.csv'}")
        run_all(list(DEMO_SHARES), out, engine="bing", engine_url=base_url, limit=DEMO_PER_TERM, census=census,
                min_faces=DEMO_PER_TERM // 2, workers=workers)


def main() -> None:
    """Entry point: one line and exit 2 for anything the user can fix; no tracebacks."""
    try:
        sys.exit(cli.main(standalone_mode=False))
    except click.ClickException as error:
        click.echo(f"gimg: error: {error.format_message()}", err=True)
        sys.exit(2)
    except (GimgError, ValueError) as error:
        click.echo(f"gimg: error: {error}", err=True)
        sys.exit(2)
    except (KeyboardInterrupt, click.Abort):
        click.echo("gimg: interrupted; finished work is kept, rerun the same command to resume", err=True)
        sys.exit(130)
    except Exception as error:  # last resort: a user must never see a traceback unless they ask for it
        if os.environ.get("GIMG_DEBUG"):
            raise
        click.echo(f"gimg: internal error: {type(error).__name__}: {error} (set GIMG_DEBUG=1 for the traceback)",
                   err=True)
        sys.exit(1)
