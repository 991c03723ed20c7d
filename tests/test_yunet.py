"""YuNet detection and landmark alignment on real photos: labelled scene faces, pasted faces, close-ups, no faces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from detection import box_of, iou, paste_faces, rgb, scene_recall

from gimg.crops import Box
from gimg.faces import detect_faces
from gimg.yunet import DEFAULT_MIN_FACE, detect_faces_yunet, pass_scales

# Six faces whose dlib-like boxes are 36-120 px wide, the small faces of issue 13, spread over a 1600x1200 image.
SMALL_FACES = [(42, (100, 100)), (48, (700, 150)), (60, (1300, 200)), (80, (200, 800)), (110, (800, 700)),
               (141, (1300, 900))]


def test_fixture_scenes_recall(fixtures):
    boxes = pd.read_csv(fixtures / "scenes" / "boxes.csv")
    found, detections = scene_recall(detect_faces_yunet, fixtures / "scenes", boxes)
    assert found == len(boxes) == 9
    assert detections == 9


def test_shared_scenes_recall(shared_data):
    boxes = pd.read_csv(shared_data / "scenes" / "boxes.csv")
    found, detections = scene_recall(detect_faces_yunet, shared_data / "scenes" / "photos", boxes)
    print(f"YuNet found {found} of {len(boxes)} labelled faces with {detections} detections")
    assert len(boxes) == 43
    assert found == 43
    assert detections <= found + 2


def test_small_pasted_faces_found(fixtures):
    image, truths = paste_faces(fixtures, SMALL_FACES)
    faces = detect_faces_yunet(image)
    matched = [max((iou(truth, face) for face in faces), default=0.0) for truth in truths]
    assert all(value >= 0.5 for value in matched), matched
    assert len(faces) == len(truths)


def test_min_face_limits_the_smallest_face(fixtures):
    image, _ = paste_faces(fixtures, [(42, (700, 400))])
    assert detect_faces_yunet(image, min_face=200) == []
    assert len(detect_faces_yunet(image, min_face=DEFAULT_MIN_FACE)) == 1


@pytest.mark.parametrize("side, corner", [(300, (650, 450)), (1100, (250, 50))], ids=["300px", "close-up"])
def test_large_faces_found(fixtures, side, corner):
    image, (truth,) = paste_faces(fixtures, [(side, corner)])
    faces = detect_faces_yunet(image)
    assert len(faces) == 1
    assert iou(truth, faces[0]) >= 0.5


def test_coarse_passes_reach_the_whole_image():
    scales = pass_scales(2000, 1500, 36)
    assert scales[0] == pytest.approx(16 / 36)
    assert 1500 * scales[-1] <= 256  # a face as large as the short side is still in range of the last pass
    assert scales == sorted(scales, reverse=True)


@pytest.mark.parametrize(
    "image",
    [np.zeros((480, 640, 3), np.uint8), np.full((1200, 1600, 3), 128, np.uint8), "dogs"],
    ids=["black", "grey", "dogs"],
)
def test_no_face(fixtures, image):
    if isinstance(image, str):
        image = rgb(fixtures / "scenes" / f"{image}.jpg")
    assert detect_faces_yunet(image) == []


def test_landmarks_inside_their_box_in_yunet_order(fixtures):
    image, _ = paste_faces(fixtures, SMALL_FACES)
    faces = detect_faces_yunet(image)
    assert len(faces) == len(SMALL_FACES)
    for face in faces:
        assert len(face.keypoints) == 5
        assert all(face.left <= x <= face.right and face.top <= y <= face.bottom for x, y in face.keypoints)
        right_eye, left_eye, nose, right_mouth, left_mouth = face.keypoints
        assert right_eye[0] < nose[0] < left_eye[0]  # the subject's right eye is on the image's left
        assert right_mouth[0] < left_mouth[0]
        assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])


def test_boxes_are_clipped_ints_and_detections_frozen(fixtures):
    image, _ = paste_faces(fixtures, [(200, (1470, 1070))])  # a quarter of the face is off the canvas
    faces = detect_faces_yunet(image)
    assert len(faces) == 1
    face = faces[0]
    assert all(isinstance(value, int) for value in box_of(face))
    assert 0 <= face.left < face.right <= 1600 and 0 <= face.top < face.bottom <= 1200
    assert face.right == 1600 and face.bottom == 1200  # the face's box goes past the corner: it is clipped
    assert 0 < face.score <= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        face.left = 0  # type: ignore[misc]


def test_yunet_is_the_default_detector_of_the_crop_stage(fixtures):
    image, truths = paste_faces(fixtures, SMALL_FACES[:2])
    boxes = detect_faces(image)
    assert all(isinstance(box, Box) for box in boxes)
    assert sorted(boxes) == sorted(Box(*box_of(face)) for face in detect_faces_yunet(image))
    assert len(boxes) == 2


@pytest.mark.parametrize(
    "image, options",
    [
        (np.zeros((10, 10), np.uint8), {}),
        (np.zeros((10, 10, 3), np.float32), {}),
        (np.zeros((10, 10, 4), np.uint8), {}),
        (np.zeros((10, 10, 3), np.uint8), {"min_score": 1.5}),
        (np.zeros((10, 10, 3), np.uint8), {"min_face": 0}),
        (np.zeros((10, 10, 3), np.uint8), {"min_face": float("nan")}),
    ],
)
def test_bad_arguments(image, options):
    with pytest.raises(ValueError):
        detect_faces_yunet(image, **options)
