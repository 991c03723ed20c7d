"""Detect, landmark and crop the faces of downloaded images: the crop stage."""

from __future__ import annotations

import csv
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import cv2
import dlib
import numpy as np

from . import models
from .blazeface import detect_faces_blazeface
from .crops import Box, box_in_crop, crop_box, decode_crop
from .executors import Executor, executor_for
from .layout import FACES_CLAIM, Layout, is_fresh, write_csv
from .options import CropOptions, ExecutionOptions
from .outcome import TermOutcome
from .registry import resolve
from .stageclaims import StageClaims, claim_rounds
from .yunet import detect_faces_yunet

log = logging.getLogger(__name__)
FACES_COLUMNS = [
    "file", "image", "face", "left", "top", "right", "bottom",
    "crop_left", "crop_top", "width", "height", "image_width", "image_height",
]
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

# Called by the crop workers with each image's faces, as (RGB crop, face box in crop coordinates); returns, per
# face, extra columns for its row. The pipeline passes a gender classifier here to fuse crop and classify.
FaceHook = Callable[[list[tuple[np.ndarray, Box]]], Sequence[dict]]


def auto_min_face(width: int, height: int) -> float:
    """The smallest face BlazeFace looks for by default: a fraction of the short side, at least MIN_FACE_FLOOR px."""
    return max(MIN_FACE_FLOOR, MIN_FACE_FRACTION * min(width, height))


def _rect_to_box(rect: dlib.rectangle, image_shape: tuple[int, ...]) -> Box:
    """A dlib rectangle clipped to the image, as face_recognition's _trim_css_to_bounds does."""
    height, width = image_shape[:2]
    return Box(max(rect.left(), 0), max(rect.top(), 0), min(rect.right(), width), min(rect.bottom(), height))


def _box_to_rect(box: Box) -> dlib.rectangle:
    return dlib.rectangle(int(box.left), int(box.top), int(box.right), int(box.bottom))


def detect_blazeface(image: np.ndarray, options: CropOptions) -> list[Box]:
    """BlazeFace's faces, down to options.min_face px (auto_min_face of the image when None)."""
    height, width = image.shape[:2]
    smallest = auto_min_face(width, height) if options.min_face is None else options.min_face
    found = detect_faces_blazeface(image, min_face=smallest)
    return [Box(face.left, face.top, face.right, face.bottom) for face in found]


def detect_yunet(image: np.ndarray, options: CropOptions) -> list[Box]:
    """YuNet's faces, down to options.min_face px (its DEFAULT_MIN_FACE when None), small faces kept."""
    found = detect_faces_yunet(image, min_face=options.min_face)
    return [Box(face.left, face.top, face.right, face.bottom) for face in found]


def detect_hog(image: np.ndarray, options: CropOptions) -> list[Box]:
    """dlib's HOG detector (the original's), upsampling options.upsample times."""
    hog = models.cached("hog", dlib.get_frontal_face_detector)
    return [_rect_to_box(rect, image.shape) for rect in hog(image, options.upsample)]


def detect_cnn(image: np.ndarray, options: CropOptions) -> list[Box]:
    """dlib's MMOD CNN detector, upsampling options.upsample times."""
    cnn = models.cached("cnn", lambda: dlib.cnn_face_detection_model_v1(str(models.cnn_face_detector())))
    return [_rect_to_box(detection.rect, image.shape) for detection in cnn(image, options.upsample)]


def detect_faces(image: np.ndarray, options: CropOptions = CropOptions()) -> list[Box]:
    """The face boxes in an RGB uint8 image, most confident first (HOG, BlazeFace, YuNet), by options.detector."""
    return resolve("face detector", options.detector)(image, options)


def landmarks_68(image: np.ndarray, box: Box) -> list[tuple[int, int]]:
    """dlib's 68 facial landmarks of the face in box, in image coordinates."""
    predictor = models.cached("68", lambda: dlib.shape_predictor(str(models.landmarks_68_predictor())))
    shape = predictor(image, _box_to_rect(box))
    return [(point.x, point.y) for point in shape.parts()]


class CropTask(NamedTuple):
    """One image to crop; plain data so that it pickles cheaply into a worker."""

    term: str
    image: str
    crop_dir: str
    options: CropOptions
    hook: FaceHook | None = None  # a picklable callable run on each image's crops as they are written


@dataclass
class CropRecord:
    """What crop_one did with one image: status is faces, no_face, unreadable or failed (with error).

    With a hook, each row also holds the hook's columns, unless hook_error says why the hook failed.
    """

    term: str
    image: str
    status: str
    error: str = ""
    rows: list[dict] = field(default_factory=list)
    hook_error: str = ""


def _read_bgr(path: Path) -> np.ndarray:
    """The image as OpenCV's BGR uint8; OpenCV decodes JPEG about twice as fast as Pillow, to the same pixels."""
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ValueError("not a decodable image")
    return image


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
    """Detect and crop the faces of one image into the term's crop folder (and run the hook); never raises."""
    source = Path(task.image)
    try:
        bgr = _read_bgr(source)
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    except Exception as error:  # any decoder failure (truncated, not an image, bomb) is this image's status
        return CropRecord(task.term, source.name, "unreadable", f"{type(error).__name__}: {error}")
    try:
        boxes = detect_faces(image, task.options)
        saved = [
            _save_face(image, bgr, box, Path(task.crop_dir), source.stem, index, task.options.landmarks)
            for index, box in enumerate(boxes)
        ]
    except Exception as error:  # a detector or disk failure on one image must not stop the other images
        return CropRecord(task.term, source.name, "failed", f"{type(error).__name__}: {error}")
    rows = [row for row, _ in saved]
    for row in rows:
        row["image"] = source.name
    record = CropRecord(task.term, source.name, "faces" if rows else "no_face", rows=rows)
    if task.hook is not None and rows:
        try:
            extras = task.hook([(decode_crop(jpeg), box_in_crop(row)) for row, jpeg in saved])
            for row, extra in zip(rows, extras, strict=True):
                row.update(extra)
        except Exception as error:  # a failing hook fails this term's hook columns, not its crops
            record.hook_error = f"{type(error).__name__}: {error}"
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


def chunksize(tasks: int, workers: int) -> int:
    """Items per pool task: up to _CHUNKSIZE, but at least four tasks per worker so that the load stays balanced."""
    return max(1, min(_CHUNKSIZE, tasks // (4 * max(workers, 1))))


def crop_held(
    layout: Layout,
    terms: list[str],
    options: CropOptions,
    executor: Executor,
    *,
    hook: FaceHook | None = None,
    on_cropped: Callable[[str, list[CropRecord]], object] = lambda term, records: None,
) -> dict[str, TermOutcome]:
    """Crop the given terms (claimed by this process) afresh in one map over their images; on_cropped gets each
    term's records once its faces.csv is written."""
    outcomes: dict[str, TermOutcome] = {}
    tasks: list[CropTask] = []
    records: dict[str, list[CropRecord]] = {}
    settings = options.settings()
    for term in terms:
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
        tasks += [CropTask(term, str(folder / name), str(crop_dir), options, hook) for name in images]
    if tasks:  # asking a Ray executor for its workers starts Ray: a run with nothing to do must not
        chunk = chunksize(len(tasks), executor.workers)
        for record in executor.map(crop_one, tasks, desc="crop", chunksize=chunk):
            records[record.term].append(record)
    for term, term_records in records.items():
        rows = [row for record in term_records for row in record.rows]
        rows.sort(key=lambda row: (row["image"], row["face"]))
        try:
            write_csv(layout.faces(term), rows, FACES_COLUMNS, settings)
        except OSError as error:
            outcomes[term] = TermOutcome(term, "failed", f"{type(error).__name__}: {error}; rerun to resume")
            continue
        outcomes[term] = TermOutcome(term, "done", _summary(term_records))
        on_cropped(term, term_records)
    return outcomes


def crop_terms(
    out: Path,
    options: CropOptions = CropOptions(),
    execution: ExecutionOptions = ExecutionOptions(),
    *,
    hook: FaceHook | None = None,
    on_cropped: Callable[[str, list[CropRecord]], object] = lambda term, records: None,
    executor: Executor | None = None,
) -> list[TermOutcome]:
    """run_crop with the crop workers' hook, and on_cropped called with each cropped term's records while this
    process still holds the term's claim (the fused pass writes its datasets there)."""
    layout = Layout(out)
    terms = layout.require_terms_with("manifest", "crop", "download")
    settings = options.settings()

    def is_done(term: str) -> bool:
        return is_fresh(layout.faces(term), layout.manifest(term), settings)

    with executor_for(execution, executor) as executor:
        def work(held: dict) -> dict[str, TermOutcome]:
            return crop_held(layout, list(held), options, executor, hook=hook, on_cropped=on_cropped)

        return claim_rounds(StageClaims(out, FACES_CLAIM, execution), terms, work, is_done=is_done,
                            already="faces.csv is newer than manifest.csv, same settings",
                            notify=lambda line: log.info(f"crop: {line}"))


def run_crop(
    out: Path,
    options: CropOptions = CropOptions(),
    execution: ExecutionOptions = ExecutionOptions(),
    *,
    executor: Executor | None = None,
) -> list[TermOutcome]:
    """Crop the faces of every downloaded term into Cropped_faces/<term>/, writing faces.csv last."""
    return crop_terms(out, options, execution, executor=executor)
