"""Labelled faces to train on: from a file,gender CSV through the real crop stage, or from a study's labelled sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .crops import box_in_crop
from .errors import GimgError, MissingInputError
from .evaluate import EVALUATION_TERM, stage_and_crop
from .layout import FACES, Layout
from .options import CropOptions, EvaluateOptions, ExecutionOptions

GENDERS = ("female", "male")
# Columns that may hold a study sample's (majority) label; the first one present is used.
SAMPLE_LABEL_COLUMNS = ("label", "majority", "majority_label", "gender")
BOX_COLUMNS = ["left", "top", "right", "bottom"]


@dataclass(frozen=True)
class TrainingFaces:
    """One row per usable face (crop path, box in crop, gender, the labels' other columns), and what was dropped."""

    faces: pd.DataFrame
    no_face: int
    other_labels: int
    source: str


def _box_columns(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([box_in_crop(row)._asdict() for row in rows], columns=BOX_COLUMNS)


def _from_images(labels_csv: Path, images: Path | None, work: Path, execution: ExecutionOptions) -> TrainingFaces:
    """A file,gender CSV: its images staged and cropped as `gimg evaluate` does, the biggest face of each kept."""
    staged, biggest = stage_and_crop(labels_csv, work, EvaluateOptions(images=images), CropOptions(), execution)
    merged = staged.merge(biggest, on="image", how="inner", suffixes=("", "_face"))
    boxes = _box_columns(merged.to_dict("records"))
    crop_dir = Layout(work).cropped(EVALUATION_TERM)
    labels = [column for column in staged.columns if column != "image"]
    faces = merged[labels].assign(crop=[str(crop_dir / name) for name in merged["file_face"]], **boxes)
    return TrainingFaces(faces, no_face=len(staged) - len(faces), other_labels=0, source=str(labels_csv))


def _from_sample(labels_csv: Path, study: Path) -> TrainingFaces:
    """A study's labelled sample (item, term, image, crop relative to the study folder, and a label column)."""
    labels = pd.read_csv(labels_csv, keep_default_na=False)
    column = next(name for name in SAMPLE_LABEL_COLUMNS if name in labels.columns)
    labels = labels.assign(gender=labels[column].astype(str).str.strip().str.lower())
    kept = labels[labels.gender.isin(GENDERS)].reset_index(drop=True)
    rows, crops = [], []
    boxes_by_folder: dict[Path, pd.DataFrame] = {}
    for crop in kept.crop:
        path = study / crop
        if path.parent not in boxes_by_folder:
            faces_csv = path.parent / FACES
            if not faces_csv.is_file():
                raise MissingInputError(f"{faces_csv} not found: {labels_csv} needs the study folder's crops "
                                        f"(pass --images with the study's output folder)")
            boxes_by_folder[path.parent] = pd.read_csv(faces_csv).set_index("file")
        table = boxes_by_folder[path.parent]
        if path.name not in table.index:
            raise GimgError(f"{crop} is not in {path.parent / FACES}: is {study} the sample's study folder?")
        rows.append(table.loc[path.name].to_dict())
        crops.append(str(path))
    faces = kept.assign(crop=crops, **_box_columns(rows))
    return TrainingFaces(faces, no_face=0, other_labels=len(labels) - len(kept), source=str(labels_csv))


def training_faces(
    labels_csv: str | Path, images: str | Path | None, work: str | Path,
    execution: ExecutionOptions = ExecutionOptions(),
) -> TrainingFaces:
    """The labelled faces of a labels CSV, in either accepted form.

    - file,gender[,race,age,...]: images in `images` (default: images/ beside the CSV), staged and cropped in
      `work` by the real crop stage, keeping each image's biggest face;
    - a study's labelled sample (crop, and label/majority/gender: female, male, unclear, not_a_person,
      not_a_face): crops relative to `images` (default: the folder above the CSV's validation/ folder), boxes
      from their faces.csv; only female and male are kept.
    """
    labels_csv = Path(labels_csv)
    if not labels_csv.is_file():
        raise MissingInputError(f"labels file {labels_csv} not found: give a CSV with file,gender columns")
    columns = set(pd.read_csv(labels_csv, nrows=0).columns)
    if "file" in columns:
        found = _from_images(labels_csv, Path(images) if images else None, Path(work), execution)
    elif "crop" in columns and columns & set(SAMPLE_LABEL_COLUMNS):
        found = _from_sample(labels_csv, Path(images) if images else labels_csv.resolve().parent.parent)
    else:
        raise GimgError(f"labels file {labels_csv} has neither file,gender nor crop,label columns: give one of them")
    counts = found.faces.gender.value_counts()
    if len(found.faces) < 10 or min(counts.get(gender, 0) for gender in GENDERS) < 2:
        raise GimgError(f"{labels_csv}: only {len(found.faces)} usable faces ({counts.to_dict()}): "
                        f"training needs at least 10, with women and men")
    return found
