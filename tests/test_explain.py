"""Occlusion heat maps: they follow what the model relies on, are written beside each face, and make a gallery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gimg.classify import OnnxGender
from gimg.evaluate import pad_to_scene, run_evaluate
from gimg.explain import OcclusionOptions, explain_faces, heatmap_path, misclassified_gallery, occlusion_heat
from gimg.faces import detect_faces


@pytest.fixture(scope="module")
def backend():
    return OnnxGender()


@pytest.fixture(scope="module")
def face(fixtures):
    """A fixture face padded as evaluate pads it, and its detected box."""
    name = pd.read_csv(fixtures / "faces" / "labels.csv").file.iloc[0]
    with Image.open(fixtures / "faces" / "images" / name) as image:
        padded = np.asarray(pad_to_scene(image))
    boxes = detect_faces(padded)
    assert boxes, "the fixture face must be found"
    return padded, boxes[0]


def test_the_heat_moves_away_from_a_region_once_it_is_occluded(backend, face):
    image, box = face
    options = OcclusionOptions()
    before = occlusion_heat(backend, image, box, options)
    assert before.heat.shape == image.shape[:2] and before.heat.max() > 0.1
    row, column = np.unravel_index(np.argmax(before.heat), before.heat.shape)
    half = round(options.patch * max(box.right - box.left, box.bottom - box.top)) // 2
    region = (slice(max(0, row - half), row + half), slice(max(0, column - half), column + half))
    occluded = image.copy()
    occluded[region] = options.fill
    after = occlusion_heat(backend, occluded, box, options)
    assert after.heat[region].mean() < 0.5 * before.heat[region].mean()
    moved_row, moved_column = np.unravel_index(np.argmax(after.heat), after.heat.shape)
    assert max(abs(moved_row - row), abs(moved_column - column)) > half


def test_explain_writes_a_heat_map_beside_each_face_and_reports_a_bad_one(backend, face, tmp_path):
    image, _ = face
    path = tmp_path / "face.jpg"
    Image.fromarray(image).save(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    good, bad = explain_faces([path, broken], backend)
    assert good.heatmap == str(heatmap_path(path)) and 0 <= good.p_female <= 1 and not good.error
    with Image.open(good.heatmap) as picture:
        assert picture.size == (image.shape[1], image.shape[0] + 16)
    assert bad.error and not bad.heatmap and not heatmap_path(broken).exists()


def test_a_gallery_of_an_evaluations_mistakes(backend, fixtures, tmp_path):
    evaluation = run_evaluate(fixtures / "faces" / "labels.csv", out=tmp_path, workers=1)
    wrong = evaluation.metrics["counts"]["fp"] + evaluation.metrics["counts"]["fn"]
    predictions = pd.read_csv(evaluation.predictions_path)
    crops = tmp_path / "Cropped_faces" / "evaluation"
    gallery = misclassified_gallery(predictions, crops, backend, tmp_path / "misclassified_heatmaps.png", limit=2)
    shown = min(wrong, 2)
    with Image.open(gallery) as sheet:
        assert sheet.size == (160 * max(1, shown), 190)
