"""Click commands for the classifier studies (`gimg train`, `gimg explain`, `gimg compare`), for cli.py to add."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import GimgError, ModelError
from .trained import TrainedGender, is_model_dir

BUILT_IN_MODELS = ("onnx", "caffe")


def load_backend(model: str):
    """A gender backend by name (onnx, caffe) or by the folder `gimg train` wrote."""
    from .classify import load_classifier

    if model in BUILT_IN_MODELS:
        return load_classifier(model)
    if is_model_dir(model):
        return TrainedGender(model)
    raise ModelError(f"unknown gender model {model!r}: give onnx, caffe or a folder made by `gimg train`")


@click.command("train")
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the labelled images (default: images/ beside LABELS), or the study folder of a "
                   "validation sample (default: the folder above its validation/).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="MODEL_DIR to write: model.onnx, manifest.json, evaluation.json (and faces/, the staged crops).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, shuffles and augmentation.")
@click.option("--validation-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True,
              help="Share of the faces held out for early stopping, calibration and evaluation.json.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True, help="Most passes over the faces.")
@click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True,
              help="Stop after this many epochs without a lower validation loss.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Train on random flips, rotations, scale, crop, colour, blur and erasing of each face.")
@click.option("--balance", default=None, metavar="COLUMN",
              help="Give every group of this labels column (e.g. race) equal weight within each gender.")
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="Fit Platt scaling on the validation split, folded into the model.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes for the crop stage.")
def train_command(labels: Path, images: Path | None, out: Path, seed: int, validation_share: float, epochs: int,
                  patience: int, augment: bool, balance: str | None, calibrate: bool, workers: int | None) -> None:
    """Fine-tune the default gender net on labelled faces (a CSV of file,gender[,race,age] or a study sample).

    Example: gimg train ../shared/data/faces/utkface/labels.csv --out utk_model --balance race
    """
    try:
        from .train import TrainOptions, train
    except ModuleNotFoundError as error:
        raise GimgError(f"gimg train needs the training extra ({error.name} is missing): "
                        f"pip install 'gimg[train]'") from None
    options = TrainOptions(seed=seed, validation_share=validation_share, epochs=epochs, patience=patience,
                           augment=augment, balance=balance, calibrate=calibrate)

    def show(row: dict) -> None:
        click.echo(f"train: epoch {row['epoch']}: loss {row['train_loss']:.4f}, validation loss "
                   f"{row['validation_loss']:.4f}, validation accuracy {row['validation_accuracy']:.3f}")

    result = train(labels, images, out, options, workers=workers, on_epoch=show)
    training, metrics = result.manifest["training"], result.evaluation
    verb = "already trained" if result.reused else "trained"
    click.echo(f"train: {verb} {result.manifest['name']} on {training['train']} faces "
               f"({training['no_face']} without a face, {training['other_labels']} not female or male); "
               f"best epoch {training['best_epoch']} of {training['epochs_run']}")
    click.echo(f"train: validation split ({training['validation']} faces): accuracy {metrics['accuracy']:.3f}, "
               f"ECE {metrics['calibration']['ece']:.3f}")
    click.echo(f"train: wrote {out}; use it with --model {out}")


@click.command("explain")
@click.argument("faces", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", default="onnx", show_default=True,
              help="Gender model: onnx, caffe, or a MODEL_DIR written by `gimg train`.")
@click.option("--method", type=click.Choice(["occlusion", "gradient"]), default="occlusion", show_default=True,
              help="Occlusion sensitivity (any model), or gradients (models from `gimg train`; needs gimg[train]).")
def explain_command(faces: tuple[Path, ...], model: str, method: str) -> None:
    """Write a heat map beside each face image (<face>.heatmap.png): what the model looks at.

    Example: gimg explain study1/Cropped_faces/nurse/0001_*_0.jpg --model onnx
    """
    from .explain import explain_faces

    records = explain_faces(list(faces), load_backend(model), method=method)
    for record in records:
        if record.error:
            click.echo(f"explain: {record.face}: failed: {record.error}")
        else:
            click.echo(f"explain: {record.face}: p_female {record.p_female:.3f}, heat map {record.heatmap}")
    failed = sum(bool(record.error) for record in records)
    if failed:
        click.echo(f"gimg: {failed} face(s) could not be explained (see above)", err=True)
        raise SystemExit(1)


@click.command("compare")
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_names", multiple=True, required=True,
              help="A model to compare (repeat it): onnx, caffe, or a MODEL_DIR written by `gimg train`.")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the labelled images. Default: images/ next to LABELS.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("comparison"),
              show_default=True, help="Folder for the staged images, crops and the comparison tables.")
@click.option("--cutoff", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="A face counts as a woman when p_female is at least this.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes for the crop stage.")
def compare_command(labels: Path, model_names: tuple[str, ...], images: Path | None, out: Path, cutoff: float,
                    workers: int | None) -> None:
    """Run several gender models on the same labelled faces and compare them in one table.

    Example: gimg compare ../shared/data/faces/utkface/labels.csv --model onnx --model utk_model
    """
    from .compare import evaluate_models

    backends = {name: load_backend(name) for name in dict.fromkeys(model_names)}
    result = evaluate_models(labels, backends, images=images, out=out, cutoff=cutoff, workers=workers)
    for row in result.comparison.summary.to_dict("records"):
        gaps = ", ".join(f"{key[:-4]} gap {row[key]:.3f}" for key in row if key.endswith("_gap"))
        click.echo(f"compare: {row['model']}: {row['faces']} faces, {row['no_face']} without a face, accuracy "
                   f"{row['accuracy']:.3f}, ECE {row['ece']:.3f}, {row['ms_per_face']:.2f} ms/face; {gaps}")
    click.echo(f"compare: {len(result.comparison.disagreements)} faces on which they disagree; "
               f"wrote {', '.join(str(path) for path in result.paths.values())}")
