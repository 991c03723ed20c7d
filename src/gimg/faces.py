"""Detect, landmark and crop the faces of downloaded images: the crop stage."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import dlib
import numpy as np
from PIL import Image

from . import models, parallel
from .layout import Layout, is_fresh, write_csv
from .outcome import TermOutcome

DETECTORS = ("hog", "cnn")
FACES_COLUMNS = [
    "file", "image", "face", "left", "top", "right", "bottom",
    "crop_left", "crop_top", "width", "height", "image_width", "image_height",
]
# The original CropFaces.py margins around face_recognition's box: 50 px above, 30 px on the other sides.
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_SIDE = 50, 30, 30
_JPEG_QUALITY = 95  # cv2.imwrite's default, which the original used
_CHUNKSIZE = 4

_loaded: dict[str, Any] = {}


class Box(NamedTuple):
    """A rectangle in pixels: left and top included, right and bottom as dlib reports them."""

    left: int
    top: int
    right: int
    bottom: int


def _check_detector(detector: str) -> None:
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}: choose one of {', '.join(DETECTORS)}")


def _cached(key: str, load: Callable[[], Any]) -> Any:
    """A model loaded once per process (each pool worker pays for it once, never per image)."""
    if key not in _loaded:
        _loaded[key] = load()
    return _loaded[key]


def _detector(detector: str) -> Callable[[np.ndarray, int], list]:
    if detector == "hog":
        return _cached("hog", dlib.get_frontal_face_detector)
    cnn = _cached("cnn", lambda: dlib.cnn_face_detection_model_v1(str(models.cnn_face_detector())))
    return lambda image, upsample: [detection.rect for detection in cnn(image, upsample)]


def _rect_to_box(rect: dlib.rectangle, image_shape: tuple[int, ...]) -> Box:
    """A dlib rectangle clipped to the image, as face_recognition's _trim_css_to_bounds does."""
    height, width = image_shape[:2]
    return Box(max(rect.left(), 0), max(rect.top(), 0), min(rect.right(), width), min(rect.bottom(), height))


def _box_to_rect(box: Box) -> dlib.rectangle:
    return dlib.rectangle(int(box.left), int(box.top), int(box.right), int(box.bottom))


def detect_faces(image: np.ndarray, *, detector: str = "hog", upsample: int = 1) -> list[Box]:
    """The face boxes in an RGB uint8 image, in the detector's order (most confident first for HOG)."""
    _check_detector(detector)
    if upsample < 0:
        raise ValueError(f"upsample must be 0 or more, got {upsample}")
    return [_rect_to_box(rect, image.shape) for rect in _detector(detector)(image, upsample)]


def landmarks_68(image: np.ndarray, box: Box) -> list[tuple[int, int]]:
    """dlib's 68 facial landmarks of the face in box, in image coordinates."""
    predictor = _cached("68", lambda: dlib.shape_predictor(str(models.landmarks_68_predictor())))
    shape = predictor(image, _box_to_rect(box))
    return [(point.x, point.y) for point in shape.parts()]


def crop_box(box: Box, image_shape: tuple[int, ...]) -> Box:
    """The region the original cropped around a face: its margins, clipped to the image (right/bottom exclusive)."""
    height, width = image_shape[:2]
    return Box(
        max(box.left - MARGIN_SIDE, 0),
        max(box.top - MARGIN_TOP, 0),
        min(box.right + MARGIN_SIDE, width),
        min(box.bottom + MARGIN_BOTTOM, height),
    )


class CropTask(NamedTuple):
    """One image to crop; plain strings so that it pickles cheaply into a worker."""

    term: str
    image: str
    crop_dir: str
    detector: str
    upsample: int


@dataclass
class CropRecord:
    """What crop_one did with one image: status is faces, no_face, unreadable or failed (with error)."""

    term: str
    image: str
    status: str
    error: str = ""
    rows: list[dict] = field(default_factory=list)


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def _save_face(image: np.ndarray, box: Box, crop_dir: Path, stem: str, index: int) -> dict:
    """Write one face's crop and landmark file; return its faces.csv row."""
    region = crop_box(box, image.shape)
    name = f"{stem}_{index}"
    Image.fromarray(image[region.top : region.bottom, region.left : region.right]).save(
        crop_dir / f"{name}.jpg", quality=_JPEG_QUALITY
    )
    points = landmarks_68(image, box)
    (crop_dir / f"{name}.txt").write_text("".join(f"{x - region.left} {y - region.top}\n" for x, y in points))
    return {
        "face": index,
        "file": f"{name}.jpg",
        **box._asdict(),
        "crop_left": region.left,
        "crop_top": region.top,
        "width": region.right - region.left,
        "height": region.bottom - region.top,
        "image_width": image.shape[1],
        "image_height": image.shape[0],
    }


def crop_one(task: CropTask) -> CropRecord:
    """Detect and crop the faces of one image into the term's crop folder; never raises."""
    source = Path(task.image)
    try:
        image = _read_rgb(source)
    except Exception as error:  # any decoder failure (truncated, not an image, bomb) is this image's status
        return CropRecord(task.term, source.name, "unreadable", f"{type(error).__name__}: {error}")
    try:
        boxes = detect_faces(image, detector=task.detector, upsample=task.upsample)
        rows = [_save_face(image, box, Path(task.crop_dir), source.stem, index) for index, box in enumerate(boxes)]
    except Exception as error:  # a dlib or disk failure on one image must not stop the other images
        return CropRecord(task.term, source.name, "failed", f"{type(error).__name__}: {error}")
    for row in rows:
        row["image"] = source.name
    return CropRecord(task.term, source.name, "faces" if rows else "no_face", rows=rows)


def _downloaded_images(manifest: Path) -> list[str]:
    with manifest.open(newline="", encoding="utf-8") as handle:
        return [row["file"] for row in csv.DictReader(handle) if row.get("status") == "downloaded" and row.get("file")]


def _summary(records: list[CropRecord]) -> str:
    faces = sum(len(record.rows) for record in records)
    with_face = sum(record.status == "faces" for record in records)
    bad = [record for record in records if record.status in ("unreadable", "failed")]
    detail = f"{len(records)} images, {with_face} with a face, {faces} faces"
    if bad:
        detail += f", {len(bad)} unreadable or failed (first: {bad[0].image}: {bad[0].error})"
    return detail


def run_crop(
    out: Path, *, detector: str = "hog", upsample: int = 1, workers: int | None = None
) -> list[TermOutcome]:
    """Crop the faces of every downloaded term into Cropped_faces/<term>/, writing faces.csv last."""
    _check_detector(detector)
    if upsample < 0:
        raise ValueError(f"upsample must be 0 or more, got {upsample}")
    layout = Layout(out)
    terms = layout.require_terms_with("manifest", "crop", "download")
    outcomes: dict[str, TermOutcome] = {}
    tasks: list[CropTask] = []
    records: dict[str, list[CropRecord]] = {}
    for term in terms:
        if is_fresh(layout.faces(term), layout.manifest(term)):
            outcomes[term] = TermOutcome(term, "skipped", "faces.csv is newer than manifest.csv")
            continue
        try:
            images = _downloaded_images(layout.manifest(term))
            crop_dir = layout.cropped(term)
            shutil.rmtree(crop_dir, ignore_errors=True)  # crops of an older run must not linger
            crop_dir.mkdir(parents=True)
        except (OSError, csv.Error) as error:
            outcomes[term] = TermOutcome(term, "failed", f"{type(error).__name__}: {error}; rerun to resume")
            continue
        records[term] = []
        folder = layout.downloaded(term)
        tasks += [CropTask(term, str(folder / name), str(crop_dir), detector, upsample) for name in images]
    workers = parallel.default_workers() if workers is None else workers
    for record in parallel.imap(crop_one, tasks, workers=workers, desc="crop", chunksize=_CHUNKSIZE):
        records[record.term].append(record)
    for term, term_records in records.items():
        rows = [row for record in term_records for row in record.rows]
        rows.sort(key=lambda row: (row["image"], row["face"]))
        try:
            write_csv(layout.faces(term), rows, FACES_COLUMNS)
        except OSError as error:
            outcomes[term] = TermOutcome(term, "failed", f"{type(error).__name__}: {error}; rerun to resume")
            continue
        outcomes[term] = TermOutcome(term, "done", _summary(term_records))
    return [outcomes[term] for term in terms]
