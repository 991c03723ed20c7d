"""`gimg train` on the 50 fixture faces: ONNX parity, determinism, MODEL_DIR, weighting, calibration, augmentation."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx", reason="needs the training extra: pip install -e '.[train]'")

import json
import shutil
from dataclasses import replace

import numpy as np
import onnx
import pandas as pd

from gimg import models
from gimg.augment import Augmentation, augmented_chip, source_spec
from gimg.correction import load_evaluation
from gimg.errors import GimgError
from gimg.crops import Box, decode_crop
from gimg.facechips import ChipSpec, align_chip, align_chips
from gimg.layout import ModelDir, is_model_dir
from gimg.netgrad import Net
from gimg.options import DEFAULT_SUPERSAMPLE, ExecutionOptions, TrainOptions
from gimg.train import calibrated, fit_platt, in_memory_p_female, sample_weights, split_indices, train
from gimg.trained import TrainedGender, read_manifest
from gimg.trainfaces import training_faces

QUICK = TrainOptions(epochs=2, patience=1, seed=7)
ONE = ExecutionOptions(workers=1)


@pytest.fixture(scope="module")
def staged(tmp_path_factory, fixtures):
    """The fixture faces found once by the real crop stage, shared by every training below."""
    work = tmp_path_factory.mktemp("faces")
    return training_faces(fixtures / "faces" / "labels.csv", None, work, ONE), work


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fixtures, staged):
    model_dir = tmp_path_factory.mktemp("model")
    return train(fixtures / "faces" / "labels.csv", model_dir, QUICK, ONE, work_dir=staged[1])


def _crops(faces: pd.DataFrame) -> list:
    return [(decode_crop(open(row.crop, "rb").read()), Box(row.left, row.top, row.right, row.bottom))
            for row in faces.itertuples()]


def test_the_model_dir_holds_a_model_a_manifest_and_an_evaluation(trained, staged):
    model_dir = trained.model_dir
    assert is_model_dir(model_dir)
    manifest = read_manifest(model_dir)
    assert manifest["name"].startswith("trained:") and manifest["training"]["options"]["seed"] == 7
    assert manifest["training"]["train"] + manifest["training"]["validation"] == len(staged[0].faces)
    assert manifest["preprocessing"]["chip"] == {"size": 32, "padding": 0.2, "supersample": DEFAULT_SUPERSAMPLE,
                                                 "flip_average": False}
    evaluation = load_evaluation(ModelDir(model_dir).evaluation_json)  # analyze's own reader accepts it
    assert evaluation.n == manifest["training"]["validation"]
    assert evaluation.model == manifest["name"]


def test_the_onnx_file_predicts_what_the_in_memory_model_does(trained, staged):
    crops = _crops(staged[0].faces)
    backend = TrainedGender(trained.model_dir)
    chips = align_chips(crops, backend.spec)
    in_memory = in_memory_p_female(Net(onnx.load(str(models.gender_onnx()))), trained.params, chips)
    from_file = backend.predict(crops)
    assert from_file.shape == (len(crops),)
    assert np.abs(from_file - in_memory).max() < 1e-5
    assert backend.name == trained.manifest["name"]


def test_a_fixed_seed_gives_the_same_model_twice(trained, staged, fixtures, tmp_path):
    train(fixtures / "faces" / "labels.csv", tmp_path / "again", QUICK, ONE, work_dir=staged[1])
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (trained.model_dir / "model.onnx").read_bytes()
    other = train(fixtures / "faces" / "labels.csv", tmp_path / "other", replace(QUICK, seed=8), ONE,
                  work_dir=staged[1])
    assert other.manifest["name"] != trained.manifest["name"]


def test_a_rerun_with_the_same_data_and_options_reuses_the_model(trained, staged, fixtures):
    stamp = (trained.model_dir / "model.onnx").stat().st_mtime_ns
    again = train(fixtures / "faces" / "labels.csv", trained.model_dir, QUICK, ONE, work_dir=staged[1])
    assert again.reused and again.manifest["name"] == trained.manifest["name"]
    assert (trained.model_dir / "model.onnx").stat().st_mtime_ns == stamp


def test_balance_needs_a_column_the_labels_have(staged, fixtures, tmp_path):
    with pytest.raises(GimgError, match="ethnicity"):
        train(fixtures / "faces" / "labels.csv", tmp_path / "m", replace(QUICK, balance="ethnicity"), ONE,
              work_dir=staged[1])


def test_a_study_sample_trains_on_its_female_and_male_labels_only(staged, tmp_path):
    faces, work = staged
    study = tmp_path / "study"
    shutil.copytree(work / "Cropped_faces", study / "Cropped_faces")
    crops = [f"Cropped_faces/evaluation/{name}" for name in faces.faces.crop.map(lambda path: path.split("/")[-1])]
    labels = list(faces.faces.gender)
    labels[:3] = ["unclear", "not_a_person", "not_a_face"]
    (study / "validation").mkdir()
    pd.DataFrame({"item": range(len(crops)), "term": "evaluation", "image": "x.jpg", "crop": crops,
                  "label": labels, "raters": 2}).to_csv(study / "validation" / "sample.csv", index=False)
    found = training_faces(study / "validation" / "sample.csv", None, tmp_path / "unused")
    assert found.other_labels == 3 and len(found.faces) == len(crops) - 3
    assert found.faces[["left", "top", "right", "bottom"]].to_numpy().tolist() == \
        faces.faces[["left", "top", "right", "bottom"]].iloc[3:].to_numpy().tolist()


def test_a_labels_file_without_usable_columns_is_refused(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("name,sex\na.jpg,f\n")
    with pytest.raises(GimgError, match="file,gender"):
        training_faces(path, None, tmp_path)


def test_options_are_checked():
    with pytest.raises(ValueError, match="--validation-share must be between 0.05 and 0.5"):
        TrainOptions(validation_share=1.0)
    with pytest.raises(ValueError, match="--learning-rate"):
        TrainOptions(learning_rate=0)


def test_weights_and_split_by_hand():
    weights = sample_weights(np.array(["f", "f", "f", "m"]))
    assert weights.tolist() == pytest.approx([4 / 6, 4 / 6, 4 / 6, 2.0])
    strata = np.array(["a"] * 10 + ["b"] * 5 + ["c"])
    train_index, validation_index = split_indices(strata, 0.2, np.random.default_rng(0))
    assert sorted(strata[validation_index].tolist()) == ["a", "a", "b"]
    assert len(train_index) + len(validation_index) == 16 and not set(train_index) & set(validation_index)


def test_platt_recovers_the_scaling_and_folds_into_the_last_layer():
    rng = np.random.default_rng(3)
    margin = rng.normal(0, 3, 20000)
    female = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 * margin - 0.7)))).astype(float)
    a, b = fit_platt(margin, female)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-0.7, abs=0.08)
    net = Net(onnx.load(str(models.gender_onnx())))
    batch = rng.normal(size=(4, 3, 32, 32)).astype(np.float32)
    logits, _ = net.forward(batch, "logits")
    folded, _ = net.forward(batch, "probabilities", calibrated(net, net.params, a, b))
    expected = 1 / (1 + np.exp(-(a * (logits[:, 0] - logits[:, 1]) + b)))
    assert folded[:, 0] == pytest.approx(expected, abs=1e-5)


def test_an_augmentation_without_jitter_reproduces_the_plain_chip(staged):
    image, box = _crops(staged[0].faces.head(1))[0]
    spec = ChipSpec(supersample=4)
    still = Augmentation(flip=0, rotation_degrees=0, scale=0, shift=0, brightness=0, contrast=0, saturation=0,
                         blur=0, erase=0)
    source = align_chip(image, box, source_spec(spec))
    view = augmented_chip(source, spec, still, np.random.default_rng(0))
    plain = align_chip(image, box, spec)
    assert np.abs(view.astype(int) - plain.astype(int)).mean() < 4
    jittered = augmented_chip(source, spec, Augmentation(), np.random.default_rng(5))
    assert np.abs(jittered.astype(int) - plain.astype(int)).mean() > 4
    again = augmented_chip(source, spec, Augmentation(), np.random.default_rng(5))
    assert np.array_equal(jittered, again)


def test_a_model_file_that_does_not_match_its_manifest_is_refused(trained, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained.model_dir, copy, ignore=shutil.ignore_patterns("faces"))
    TrainedGender(copy)  # intact: loads
    model = Net(onnx.load(str(copy / "model.onnx")))
    tampered = {**model.params, "layer_1_bias": model.params["layer_1_bias"] + np.float32(1)}
    (copy / "model.onnx").write_bytes(model.export(tampered).SerializeToString())
    with pytest.raises(GimgError, match="train it again"):
        TrainedGender(copy)
    (copy / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(GimgError, match="format"):
        TrainedGender(copy)


CUDA_HERE = "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers()


@pytest.mark.skipif(CUDA_HERE, reason="this machine's onnxruntime has CUDA")
def test_gpu_is_refused_for_a_trained_model_where_onnxruntime_would_fall_back_to_the_cpu(trained, gimg, tmp_path):
    with pytest.raises(GimgError, match="^--gpu: onnxruntime runs the gender model on CPUExecutionProvider, not CUDA"):
        TrainedGender(trained.model_dir, gpu=True)
    assert TrainedGender(trained.model_dir).providers == ["CPUExecutionProvider"]
    code, _, err = gimg("classify", "--out", tmp_path, "--model", trained.model_dir, "--gpu")
    assert code == 2 and err.startswith("gimg: error: --gpu: onnxruntime runs") and len(err.splitlines()) == 1
