"""BlazeFace detection on real photos: labelled scene faces, UTKFace faces pasted at known places, and no faces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from detection import iou, paste_faces, rgb, scene_recall

from gimg.blazeface import (
    FULL_RANGE_MODEL,
    SHORT_RANGE_MODEL,
    Detection,
    _model,
    detect_faces_blazeface,
)


def test_anchors_match_mediapipe_grids():
    assert len(_model(FULL_RANGE_MODEL).anchors) == 2304  # 48x48 cells, one anchor each
    assert len(_model(SHORT_RANGE_MODEL).anchors) == 896  # 16x16x2 + 8x8x6


def test_fixture_scenes_recall(fixtures):
    boxes = pd.read_csv(fixtures / "scenes" / "boxes.csv")
    found, detections = scene_recall(detect_faces_blazeface, fixtures / "scenes", boxes)
    assert found == len(boxes) == 9
    assert detections == 9


def test_shared_scenes_recall(shared_data):
    boxes = pd.read_csv(shared_data / "scenes" / "boxes.csv")
    found, detections = scene_recall(detect_faces_blazeface, shared_data / "scenes" / "photos", boxes)
    print(f"BlazeFace found {found} of {len(boxes)} labelled faces with {detections} detections")
    # Measured 43 of 43 with 43 detections; dlib HOG finds 11 (upsample 0) and 43 (upsample 1).
    assert len(boxes) == 43
    assert found >= 42
    assert detections <= found + 2


@pytest.mark.parametrize("side", [60, 300])
def test_pasted_face_found_in_large_photo(fixtures, side):
    image, (truth,) = paste_faces(fixtures, [(side, (700, 400))])
    faces = detect_faces_blazeface(image)
    assert len(faces) == 1
    face = faces[0]
    assert iou(truth, face) >= 0.5
    (right_eye, left_eye, nose, mouth, _, _) = face.keypoints
    assert right_eye[0] < nose[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


def test_close_up_face_found(fixtures):
    image, (truth,) = paste_faces(fixtures, [(1100, (250, 50))])
    faces = detect_faces_blazeface(image)
    assert len(faces) == 1
    assert iou(truth, faces[0]) >= 0.5


def test_small_face_needs_small_min_face(fixtures):
    image, _ = paste_faces(fixtures, [(40, (700, 400))])
    assert detect_faces_blazeface(image, min_face=200) == []
    assert len(detect_faces_blazeface(image, min_face=24)) == 1


@pytest.mark.parametrize(
    "image",
    [np.zeros((480, 640, 3), np.uint8), np.full((1200, 1600, 3), 128, np.uint8), "dogs"],
    ids=["black", "grey", "dogs"],
)
def test_no_face(fixtures, image):
    if isinstance(image, str):
        image = rgb(fixtures / "scenes" / f"{image}.jpg")
    assert detect_faces_blazeface(image) == []


def test_boxes_are_clipped_ints_and_detections_frozen(fixtures):
    image, _ = paste_faces(fixtures, [(200, (1400, 1000))])
    faces = detect_faces_blazeface(image)
    assert faces
    for face in faces:
        assert all(isinstance(value, int) for value in (face.left, face.top, face.right, face.bottom))
        assert 0 <= face.left < face.right <= 1600 and 0 <= face.top < face.bottom <= 1200
        assert len(face.keypoints) == 6 and 0 < face.score <= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        faces[0].left = 0  # type: ignore[misc]
    assert isinstance(faces[0], Detection)


@pytest.mark.parametrize(
    "image, options",
    [
        (np.zeros((10, 10), np.uint8), {}),
        (np.zeros((10, 10, 3), np.float32), {}),
        (np.zeros((10, 10, 3), np.uint8), {"min_score": 1.5}),
        (np.zeros((10, 10, 3), np.uint8), {"min_face": 0}),
    ],
)
def test_bad_arguments(image, options):
    with pytest.raises(ValueError):
        detect_faces_blazeface(image, **options)
