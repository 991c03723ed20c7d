"""`gimg label`: sample the study's own faces, serve them to raters, import labels, and report the study's rates."""

from __future__ import annotations

from pathlib import Path

import click

from ..layout import Layout
from ..options import COUNTING, AnalyzeOptions, SampleOptions, ServeOptions
from .flags import config_for, fields_of, log, options_of, study_out

@click.group()
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
    from ..validation import draw_sample

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
    from ..labelserver import serve_labels

    serve_labels(out, ServeOptions(**values),
                 on_ready=lambda url: log.info(f"label serve: open {url} in a browser; Ctrl-C stops the page"))


@label.command("import")
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@study_out
def label_import(labels: Path, out: Path) -> None:
    """Import labels made elsewhere: a CSV of item, rater, label (female, male, unclear, not_a_person, not_a_face).

    Example: gimg label import crowd_labels.csv --out study1
    """
    from ..validation import import_labels

    for rater, count in import_labels(out, labels).items():
        log.info(f"label import: {count} answers of rater {rater}")


BOOTSTRAP = ("resamples", "seed")  # the AnalyzeOptions that `gimg label report` takes


@label.command("report")
@study_out
@config_for(BOOTSTRAP)
@fields_of(AnalyzeOptions, BOOTSTRAP)
def label_report(out: Path, **values) -> None:
    """Agreement between raters, majority labels, and the study's own error rates (validation/evaluation.json).

    Example: gimg label report --out study1
    """
    from ..labelreport import run_label_report

    for line in run_label_report(out, AnalyzeOptions(**values)).lines():
        log.info(f"label report: {line}")
