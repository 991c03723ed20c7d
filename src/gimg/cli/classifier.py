"""The gender model's commands: evaluate (and compare) models on labelled faces, train one, explain its decisions."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import click

from ..errors import GimgError
from ..options import (
    ClassifyOptions,
    CropOptions,
    EvaluateOptions,
    ExecutionOptions,
    ExplainOptions,
    StudyConfig,
    TrainOptions,
    pick,
)
from .flags import click_option, log, options_of, out_option

def models_option(function: Callable) -> Callable:
    """evaluate's --model, given once per model to compare, and --gpu: each model becomes its ClassifyOptions."""
    gpu = next(item for item in fields(ClassifyOptions) if item.name == "gpu")
    model = click.option("--model", "models", multiple=True, default=("onnx",), show_default=True,
                         envvar="GIMG_MODEL", help="Gender model: onnx, caffe, or a MODEL_DIR made by `gimg train`. "
                                                   "Give it more than once to compare models on the same faces.")
    return model(click_option(gpu)(function))


@click.command()
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
        from ..sidebyside import describe, evaluate_models

        compared = evaluate_models(labels, classifiers, out, options, config.crop, config.execution)
        log.info(f"evaluate: {len(classifiers)} models on the same faces (gap: best minus worst group's accuracy, "
                 f"95% interval)\n{describe(compared.comparison)}")
        log.info(f"evaluate: {len(compared.comparison.disagreements)} faces on which they disagree; wrote "
                 f"{', '.join(str(path) for path in compared.paths.values())}")
        return
    from ..evaluate import run_evaluate

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


@click.command()
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="MODEL_DIR to write: model.onnx, evaluation.json, manifest.json, and faces/ (the staged crops).")
@options_of(TrainOptions, ExecutionOptions)
def train(labels: Path, out: Path, **values) -> None:
    """Fine-tune the bundled gender net on labelled faces (file,gender[,race,age] or a study's validation sample).

    Example: gimg train ../shared/data/faces/utkface/labels.csv --out utk_model --balance race
    """
    try:
        from ..train import train as train_model
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


@click.command()
@click.argument("faces", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@options_of(ClassifyOptions, ExplainOptions)
def explain(faces: tuple[Path, ...], **values) -> None:
    """Write a heat map beside each face image (<face>.heatmap.png): where the model's decision rests.

    Example: gimg explain study1/Cropped_faces/nurse/*_0.jpg --model onnx --method occlusion
    """
    from ..classify import load_classifier
    from ..explain import explain_faces

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
