"""Occlusion heat maps: they follow what the model relies on, are written beside each face, and make a gallery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from caffe_fixture import write_caffemodel

from gimg.chipnet import default_net
from gimg.classify import CaffeGender, OnnxGender
from gimg.errors import GimgError
from gimg.evaluate import pad_to_scene, run_evaluate
from gimg.explain import OcclusionOptions, explain_faces, gradient_heat, heatmap_path, occlusion_heat
from gimg.facechips import ChipSpec, align_chip
from gimg.faces import detect_faces
from gimg.models import CAFFE_DIR_VARIABLE
from gimg.options import CropOptions, EvaluateOptions, ExecutionOptions, ExplainOptions


@pytest.fixture(scope="module")
def backend():
    return OnnxGender()


@pytest.fixture(scope="module")
def face(fixtures):
    """A fixture face padded as evaluate pads it, and its box as BlazeFace detects it: the box these tests were
    written and checked on, so that a change of the default detector does not change what they look at."""
    name = pd.read_csv(fixtures / "faces" / "labels.csv").file.iloc[0]
    with Image.open(fixtures / "faces" / "images" / name) as image:
        padded = np.asarray(pad_to_scene(image))
    boxes = detect_faces(padded, CropOptions(detector="blazeface"))
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


def test_evaluate_draws_a_gallery_of_its_mistakes(fixtures, tmp_path):
    evaluation = run_evaluate(fixtures / "faces" / "labels.csv", tmp_path, EvaluateOptions(heatmaps=2),
                              execution=ExecutionOptions(workers=1))
    wrong = evaluation.metrics["counts"]["fp"] + evaluation.metrics["counts"]["fn"]
    assert wrong >= 2, "the fixture faces hold mistakes to draw"
    assert evaluation.heatmaps_path == tmp_path / "misclassified_heatmaps.png"
    with Image.open(evaluation.heatmaps_path) as sheet:
        assert sheet.size == (160 * 2, 190)
    again = run_evaluate(fixtures / "faces" / "labels.csv", tmp_path / "none", EvaluateOptions(heatmaps=0),
                         execution=ExecutionOptions(workers=1))
    assert again.heatmaps_path is None and not (tmp_path / "none" / "misclassified_heatmaps.png").exists()


def test_a_gradient_map_for_a_backend_that_runs_backwards(backend, face, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="needs the training extra: pip install -e '.[train]'")
    image, box = face
    net = default_net(ChipSpec(supersample=4))
    explanation = gradient_heat(net, image, box)
    assert explanation.heat.shape == image.shape[:2] and explanation.heat.max() > 0
    row, column = np.unravel_index(np.argmax(explanation.heat), explanation.heat.shape)
    assert box.left - 20 <= column <= box.right + 20 and box.top - 20 <= row <= box.bottom + 20
    far = explanation.heat.copy()
    far[max(0, box.top - 60) : box.bottom + 60, max(0, box.left - 60) : box.right + 60] = 0
    assert far.max() == 0  # nothing is drawn outside the chip's reach
    path = tmp_path / "face.jpg"
    Image.fromarray(image).save(path)
    (record,) = explain_faces([path], net, ExplainOptions(method="gradient"))
    assert record.heatmap and not record.error
    write_caffemodel(tmp_path / "gender_net.caffemodel")  # random weights: the Caffe net has no gradients here
    monkeypatch.setenv(CAFFE_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(GimgError, match="no gradients"):
        explain_faces([path], CaffeGender(), ExplainOptions(method="gradient"))


def test_the_chip_gradient_matches_finite_differences(face):
    pytest.importorskip("onnx", reason="needs the training extra: pip install -e '.[train]'")
    image, box = face
    net = default_net(ChipSpec())
    chip = align_chip(image, box, net.spec)[None]
    gradient = net.chip_gradient(chip)

    def log_odds(values):
        p = float(net.predict_chips(values)[0])
        return np.log(p / (1 - p))

    for index in [(0, 16, 16, 0), (0, 10, 20, 2), (0, 22, 12, 1)]:
        up, down = chip.copy(), chip.copy()
        up[index] = min(255, int(chip[index]) + 2)
        down[index] = max(0, int(chip[index]) - 2)
        step = int(up[index]) - int(down[index])
        assert gradient[index] == pytest.approx((log_odds(up) - log_odds(down)) / step, rel=0.1, abs=2e-4)
