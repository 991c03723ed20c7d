"""The crop stage on real photos: dlib detection against hand-labelled boxes, crops, landmarks, run_crop."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gimg.errors import MissingInputError
from gimg.crops import Box, crop_box
from gimg.faces import MIN_FACE_FLOOR, CropTask, auto_min_face, chunksize, crop_one, detect_faces, landmarks_68, run_crop
from gimg.layout import Layout, write_csv
from gimg.options import CropOptions, ExecutionOptions

MANIFEST_COLUMNS = ["rank", "url", "source_page", "engine", "time", "sha256", "status", "error", "file"]
FACES_COLUMNS = (
    "file,image,face,left,top,right,bottom,crop_left,crop_top,width,height,image_width,image_height".split(",")
)
CANVAS = 400  # UTKFace crops are 200 px and tight: the detector needs context around them


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def padded_face(path: Path) -> np.ndarray:
    """A 200x200 UTKFace crop centred on a 400x400 canvas of its own replicated edges."""
    face = read_rgb(path)
    pad = (CANVAS - face.shape[0]) // 2
    return np.pad(face, ((pad, pad), (pad, pad), (0, 0)), mode="edge")


def write_out_tree(out: Path, term: str, images: dict[str, np.ndarray], extra: dict[str, bytes] | None = None) -> Path:
    """A download stage's output for one term: JPEGs, terms.csv, and manifest.csv with its exact columns.

    `extra` files are written as given and listed as downloaded (to test unreadable images); a duplicate
    and a failed row with no file check that only downloaded images are cropped.
    """
    layout = Layout(out)
    folder = layout.downloaded(term)
    folder.mkdir(parents=True)
    rows = []
    for rank, (name, image) in enumerate(images.items(), start=1):
        Image.fromarray(image).save(folder / name, quality=95)
        rows.append({"rank": rank, "url": f"http://127.0.0.1/{name}", "status": "downloaded", "file": name})
    for name, payload in (extra or {}).items():
        (folder / name).write_bytes(payload)
        rows.append({"rank": len(rows) + 1, "url": f"http://127.0.0.1/{name}", "status": "downloaded", "file": name})
    rows.append({"rank": len(rows) + 1, "url": "http://127.0.0.1/again", "status": "duplicate", "file": ""})
    rows.append({"rank": len(rows) + 1, "url": "http://127.0.0.1/gone", "status": "failed", "error": "HTTP 404"})
    for row in rows:
        row.update(source_page="http://127.0.0.1/page", engine="urls", time="2026-11-01T00:00:00Z")
    layout.remember_terms(layout.known_terms() + [term])
    write_csv(layout.manifest(term), rows, MANIFEST_COLUMNS)
    return folder


def labelled_boxes(fixtures: Path, image: str) -> list[Box]:
    with (fixtures / "scenes" / "boxes.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["file"] == image]
    return [
        Box(int(r["left"]), int(r["top"]), int(r["left"]) + int(r["width"]), int(r["top"]) + int(r["height"]))
        for r in rows
    ]


def iou(a: Box, b: Box) -> float:
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    inter = max(width, 0) * max(height, 0)
    area = lambda box: (box.right - box.left) * (box.bottom - box.top)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.mark.parametrize(
    "image, detector, upsample, count",
    [
        ("2008_002079.jpg", "hog", 1, 6),  # faces of about 37 px: HOG needs upsample 1
        ("2008_001322.jpg", "hog", 1, 3),
        ("dogs.jpg", "hog", 1, 0),
        ("2008_001322.jpg", "cnn", 0, 3),
        ("2008_002079.jpg", "blazeface", 1, 6),  # auto min_face: 36 px on these 500 px photos
        ("2008_001322.jpg", "blazeface", 1, 3),
        ("dogs.jpg", "blazeface", 1, 0),
    ],
)
def test_detect_faces_matches_labelled_boxes(fixtures, image, detector, upsample, count):
    found = detect_faces(read_rgb(fixtures / "scenes" / image), CropOptions(detector=detector, upsample=upsample))
    labelled = labelled_boxes(fixtures, image)
    assert len(labelled) == count and len(found) == count
    assert all(isinstance(box, Box) and all(type(value) is int for value in box) for box in found)
    for truth in labelled:
        assert max(iou(truth, box) for box in found) >= 0.5, truth


def test_unknown_detector_lists_choices():
    with pytest.raises(ValueError, match="blazeface, yunet, hog, cnn"):
        detect_faces(np.zeros((10, 10, 3), np.uint8), CropOptions(detector="haar"))
    with pytest.raises(ValueError, match="blazeface, yunet, hog, cnn"):
        run_crop(Path("."), CropOptions(detector="haar"))
    with pytest.raises(ValueError, match="min-face"):
        run_crop(Path("."), CropOptions(min_face=0))


@pytest.mark.parametrize(
    "width, height, expected",
    [(500, 375, MIN_FACE_FLOOR), (640, 480, 40.0), (2000, 1500, 125.0), (1200, 3000, 100.0)],
)
def test_auto_min_face_scales_with_the_short_side(width, height, expected):
    assert auto_min_face(width, height) == pytest.approx(expected)


@pytest.mark.parametrize("tasks, workers, expected", [(0, 2, 1), (10, 2, 1), (100, 2, 12), (10_000, 2, 16)])
def test_chunksize_keeps_workers_busy(tasks, workers, expected):
    assert chunksize(tasks, workers) == expected


@pytest.mark.parametrize(
    "box, shape, expected",
    [
        (Box(100, 100, 150, 150), (400, 400, 3), Box(70, 50, 180, 180)),  # the original's margins
        (Box(10, 20, 60, 70), (400, 400, 3), Box(0, 0, 90, 100)),  # clipped at the top left
        (Box(350, 330, 400, 390), (400, 420, 3), Box(320, 280, 420, 400)),  # clipped at the bottom right
    ],
)
def test_crop_box_margins_and_clipping(box, shape, expected):
    assert crop_box(box, shape) == expected


def test_landmarks_68_lie_on_the_face(fixtures):
    image = read_rgb(fixtures / "scenes" / "2008_001322.jpg")
    box = detect_faces(image)[0]
    points = landmarks_68(image, box)
    assert len(points) == 68
    xs, ys = np.array(points).T
    assert box.left - 10 <= xs.min() and xs.max() <= box.right + 10
    assert box.top - 10 <= ys.min() and ys.max() <= box.bottom + 10


def test_crop_one_reports_an_unreadable_image(tmp_path):
    broken = tmp_path / "0001_deadbeef.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    record = crop_one(CropTask("nurse", str(broken), str(tmp_path), CropOptions(detector="hog")))
    assert record.status == "unreadable" and record.error and record.rows == []


@pytest.mark.parametrize("detector, landmarks", [("blazeface", False), ("blazeface", True), ("hog", True)])
def test_run_crop_writes_crops_landmarks_and_faces_csv(fixtures, tmp_path, detector, landmarks):
    face_files = sorted((fixtures / "faces" / "images").glob("*.jpg"))[:3]
    images = {f"{index:04d}_0000000{index}.jpg": padded_face(path) for index, path in enumerate(face_files, 1)}
    images["0004_00000004.jpg"] = read_rgb(fixtures / "scenes" / "2008_001322.jpg")
    images["0005_00000005.jpg"] = read_rgb(fixtures / "scenes" / "dogs.jpg")
    write_out_tree(tmp_path, "nurse", images, extra={"0006_00000006.jpg": b"truncated"})
    layout = Layout(tmp_path)

    [outcome] = run_crop(tmp_path, CropOptions(detector=detector, landmarks=landmarks), ExecutionOptions(workers=2))

    assert outcome.status == "done", outcome
    assert outcome.detail.startswith("6 images, 4 with a face, 6 faces, 1 unreadable")
    with layout.faces("nurse").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == FACES_COLUMNS
    assert [(row["image"], row["face"]) for row in rows] == sorted(
        [(name, "0") for name in list(images)[:3]] + [("0004_00000004.jpg", str(face)) for face in range(3)]
    )
    for row in rows:
        crop = read_rgb(layout.cropped("nurse") / row["file"])
        assert row["file"] == f"{Path(row['image']).stem}_{row['face']}.jpg"
        assert crop.shape[:2] == (int(row["height"]), int(row["width"]))
        left, top, right, bottom = (int(row[key]) for key in ("left", "top", "right", "bottom"))
        assert int(row["crop_left"]) == max(left - 30, 0) and int(row["crop_top"]) == max(top - 50, 0)
        landmark_file = (layout.cropped("nurse") / row["file"]).with_suffix(".txt")
        assert landmark_file.exists() == landmarks
        if not landmarks:
            continue
        lines = landmark_file.read_text().splitlines()
        points = np.array([[int(value) for value in line.split(" ")] for line in lines])
        assert points.shape == (68, 2)
        assert (points >= -5).all() and (points[:, 0] <= crop.shape[1] + 5).all()
    padded = next(row for row in rows if row["image"] == "0001_00000001.jpg")
    assert (int(padded["image_width"]), int(padded["image_height"])) == (CANVAS, CANVAS)


def test_run_crop_skips_done_terms_and_clears_stale_crops(fixtures, tmp_path):
    face = sorted((fixtures / "faces" / "images").glob("*.jpg"))[0]
    write_out_tree(tmp_path, "judge", {"0001_00000001.jpg": padded_face(face)})
    layout = Layout(tmp_path)
    assert run_crop(tmp_path, CropOptions(landmarks=True), ExecutionOptions(workers=1))[0].status == "done"
    assert run_crop(tmp_path, CropOptions(landmarks=True), ExecutionOptions(workers=1))[0].status == "skipped"

    stale = layout.cropped("judge") / "0099_00000099_0.jpg"
    stale.write_bytes(b"from an older run")
    later = layout.faces("judge").stat().st_mtime_ns + 1_000_000_000
    os.utime(layout.manifest("judge"), ns=(later, later))
    assert run_crop(tmp_path, CropOptions(landmarks=True), ExecutionOptions(workers=1))[0].status == "done"
    assert not stale.exists()
    assert sorted(path.name for path in layout.cropped("judge").iterdir()) == [
        "0001_00000001_0.jpg", "0001_00000001_0.txt", "faces.csv", "faces.settings.json"
    ]


def test_run_crop_needs_a_download_first(tmp_path):
    with pytest.raises(MissingInputError, match="gimg download"):
        run_crop(tmp_path)
