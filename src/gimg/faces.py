"""Detect, landmark and crop the faces of downloaded images: the crop stage."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import cv2
import dlib
import numpy as np

from . import models, parallel
from .blazeface import detect_faces_blazeface
from .yunet import detect_faces_yunet
from .layout import Layout, is_fresh, write_csv
from .outcome import TermOutcome

DETECTORS = ("blazeface", "yunet", "hog", "cnn")
FACES_COLUMNS = [
    "file", "image", "face", "left", "top", "right", "bottom",
    "crop_left", "crop_top", "width", "height", "image_width", "image_height",
]
# The original CropFaces.py margins around face_recognition's box: 50 px above, 30 px on the other sides.
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_SIDE = 50, 30, 30
_JPEG_QUALITY = 95  # cv2.imwrite's default, which the original used
# Images per pool task: large enough that pickling and scheduling cost little, small enough to balance 2 workers.
_CHUNKSIZE = 16
# BlazeFace's smallest face when min_face is automatic: 1/12 of the image's short side, which brings the short
# side to the model's 192 px input (one row of tiles), but never above MIN_FACE_FLOOR px, the faces of the
# labelled group photos (37 px), which dlib HOG upsample 1 finds. On the bench set this finds 75% of the pasted
# faces (40-400 px) instead of 93% at a fixed 36 px, for about 10 ms of detection per image (one thread, LiteRT)
# instead of 34.
MIN_FACE_FRACTION = 1 / 12
MIN_FACE_FLOOR = 36.0

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


def auto_min_face(width: int, height: int) -> float:
    """The smallest face BlazeFace looks for by default: a fraction of the short side, at least MIN_FACE_FLOOR px."""
    return max(MIN_FACE_FLOOR, MIN_FACE_FRACTION * min(width, height))


def _dlib_detector(detector: str) -> Callable[[np.ndarray, int], list]:
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


def detect_faces(
    image: np.ndarray, *, detector: str = "blazeface", upsample: int = 1, min_face: float | None = None
) -> list[Box]:
    """The face boxes in an RGB uint8 image, most confident first (HOG, BlazeFace and YuNet).

    upsample applies to dlib's detectors, min_face (px) to BlazeFace (None: auto_min_face) and YuNet (None: its
    DEFAULT_MIN_FACE).
    """
    _check_detector(detector)
    if upsample < 0:
        raise ValueError(f"upsample must be 0 or more, got {upsample}")
    if detector == "blazeface":
        height, width = image.shape[:2]
        smallest = auto_min_face(width, height) if min_face is None else min_face
        found = detect_faces_blazeface(image, min_face=smallest)
        return [Box(face.left, face.top, face.right, face.bottom) for face in found]
    if detector == "yunet":
        found = detect_faces_yunet(image, min_face=min_face)
        return [Box(face.left, face.top, face.right, face.bottom) for face in found]
    return [_rect_to_box(rect, image.shape) for rect in _dlib_detector(detector)(image, upsample)]


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


# A gender classifier for the fused crop+classify pass: p_female of each (RGB crop, face box in crop coordinates).
ClassifyCrops = Callable[[list[tuple[np.ndarray, Box]]], Sequence[float]]


class CropTask(NamedTuple):
    """One image to crop; plain data so that it pickles cheaply into a worker."""

    term: str
    image: str
    crop_dir: str
    detector: str
    upsample: int
    min_face: float | None = None
    landmarks: bool = False
    classify: ClassifyCrops | None = None  # a picklable callable: also classify the crops, as they are written


@dataclass
class CropRecord:
    """What crop_one did with one image: status is faces, no_face, unreadable or failed (with error).

    In the fused pass each row also holds p_female, unless classify_error says why the crops were not classified.
    """

    term: str
    image: str
    status: str
    error: str = ""
    rows: list[dict] = field(default_factory=list)
    classify_error: str = ""


def _read_bgr(path: Path) -> np.ndarray:
    """The image as OpenCV's BGR uint8; OpenCV decodes JPEG about twice as fast as Pillow, to the same pixels."""
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ValueError("not a decodable image")
    return image


def decode_crop(data: np.ndarray | bytes) -> np.ndarray:
    """A crop's JPEG as RGB uint8, decoded the same way in the fused pass and the classify stage.

    OpenCV's decoder gives Pillow's pixels (checked on the 910 bench crops) in about 20% less time.
    """
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ValueError("not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def box_in_crop(row: dict) -> Box:
    """The detected box of a faces.csv row, in the coordinates of its crop."""
    left, top = int(row["crop_left"]), int(row["crop_top"])
    return Box(int(row["left"]) - left, int(row["top"]) - top, int(row["right"]) - left, int(row["bottom"]) - top)


def _save_face(
    image: np.ndarray, bgr: np.ndarray, box: Box, crop_dir: Path, stem: str, index: int, landmarks: bool
) -> tuple[dict, bytes]:
    """Write one face's crop (and landmark file when asked); return its faces.csv row and the crop's JPEG.

    image is the RGB image and bgr the same pixels in OpenCV's order, which cv2.imencode takes without a copy.
    """
    region = crop_box(box, image.shape)
    name = f"{stem}_{index}"
    # cv2.imencode (4:2:0, as Pillow) decodes to Pillow's pixels at the same quality, about 20% faster.
    encoded, jpeg = cv2.imencode(
        ".jpg", bgr[region.top : region.bottom, region.left : region.right], [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
    )
    if not encoded:
        raise ValueError(f"cannot encode the crop of face {index} as JPEG")
    data = jpeg.tobytes()
    (crop_dir / f"{name}.jpg").write_bytes(data)
    if landmarks:
        points = landmarks_68(image, box)
        (crop_dir / f"{name}.txt").write_text("".join(f"{x - region.left} {y - region.top}\n" for x, y in points))
    row = {
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
    return row, data


def crop_one(task: CropTask) -> CropRecord:
    """Detect and crop the faces of one image into the term's crop folder (and classify them); never raises."""
    source = Path(task.image)
    try:
        bgr = _read_bgr(source)
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    except Exception as error:  # any decoder failure (truncated, not an image, bomb) is this image's status
        return CropRecord(task.term, source.name, "unreadable", f"{type(error).__name__}: {error}")
    try:
        boxes = detect_faces(image, detector=task.detector, upsample=task.upsample, min_face=task.min_face)
        saved = [
            _save_face(image, bgr, box, Path(task.crop_dir), source.stem, index, task.landmarks)
            for index, box in enumerate(boxes)
        ]
    except Exception as error:  # a detector or disk failure on one image must not stop the other images
        return CropRecord(task.term, source.name, "failed", f"{type(error).__name__}: {error}")
    rows = [row for row, _ in saved]
    for row in rows:
        row["image"] = source.name
    record = CropRecord(task.term, source.name, "faces" if rows else "no_face", rows=rows)
    if task.classify is not None and rows:
        try:
            p_female = task.classify([(decode_crop(jpeg), box_in_crop(row)) for row, jpeg in saved])
            for row, value in zip(rows, p_female, strict=True):
                row["p_female"] = float(value)
        except Exception as error:  # a model failure fails this term's classification, not its crops
            record.classify_error = f"{type(error).__name__}: {error}"
    return record


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


def _check_options(detector: str, upsample: int, min_face: float | None) -> None:
    _check_detector(detector)
    if upsample < 0:
        raise ValueError(f"upsample must be 0 or more, got {upsample}")
    if min_face is not None and min_face <= 0:
        raise ValueError(f"min_face must be positive, got {min_face}")


def chunksize(tasks: int, workers: int) -> int:
    """Items per pool task: up to _CHUNKSIZE, but at least four tasks per worker so that the load stays balanced."""
    return max(1, min(_CHUNKSIZE, tasks // (4 * max(workers, 1))))


def crop_terms(
    out: Path,
    *,
    detector: str = "blazeface",
    upsample: int = 1,
    min_face: float | None = None,
    landmarks: bool = False,
    workers: int | None = None,
    classify: ClassifyCrops | None = None,
) -> tuple[list[TermOutcome], dict[str, list[CropRecord]]]:
    """run_crop, also returning the records of each term it cropped (with p_female when classify is given)."""
    _check_options(detector, upsample, min_face)
    layout = Layout(out)
    terms = layout.require_terms_with("manifest", "crop", "download")
    outcomes: dict[str, TermOutcome] = {}
    tasks: list[CropTask] = []
    records: dict[str, list[CropRecord]] = {}
    settings = {"detector": detector, "upsample": upsample, "min_face": min_face, "landmarks": landmarks}
    for term in terms:
        if is_fresh(layout.faces(term), layout.manifest(term), settings):
            outcomes[term] = TermOutcome(term, "skipped", "faces.csv is newer than manifest.csv, same settings")
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
        tasks += [
            CropTask(term, str(folder / name), str(crop_dir), detector, upsample, min_face, landmarks, classify)
            for name in images
        ]
    workers = parallel.default_workers() if workers is None else workers
    chunk = chunksize(len(tasks), workers)
    for record in parallel.imap(crop_one, tasks, workers=workers, desc="crop", chunksize=chunk):
        records[record.term].append(record)
    done: dict[str, list[CropRecord]] = {}
    for term, term_records in records.items():
        rows = [row for record in term_records for row in record.rows]
        rows.sort(key=lambda row: (row["image"], row["face"]))
        try:
            write_csv(layout.faces(term), rows, FACES_COLUMNS, settings)
        except OSError as error:
            outcomes[term] = TermOutcome(term, "failed", f"{type(error).__name__}: {error}; rerun to resume")
            continue
        outcomes[term] = TermOutcome(term, "done", _summary(term_records))
        done[term] = term_records
    return [outcomes[term] for term in terms], done


def run_crop(
    out: Path,
    *,
    detector: str = "blazeface",
    upsample: int = 1,
    min_face: float | None = None,
    landmarks: bool = False,
    workers: int | None = None,
) -> list[TermOutcome]:
    """Crop the faces of every downloaded term into Cropped_faces/<term>/, writing faces.csv last.

    min_face (BlazeFace, px) defaults to auto_min_face of each image; landmarks also writes 68-point .txt files.
    """
    outcomes, _ = crop_terms(
        out, detector=detector, upsample=upsample, min_face=min_face, landmarks=landmarks, workers=workers
    )
    return outcomes
