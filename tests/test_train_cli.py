"""train -> evaluate -> classify -> analyze with a trained model, and explain, all through gimg's own entry point."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("onnx", reason="needs the training extra: pip install -e '.[train]'")

from gimg.layout import Layout, ModelDir, settings_path  # noqa: E402


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_trained_model_through_the_cli(gimg, fixtures, tmp_path):
    labels = fixtures / "faces" / "labels.csv"
    model = tmp_path / "model"
    code, out, err = gimg("train", labels, "--out", model, "--epochs", "2", "--patience", "1", "--workers", "1")
    assert code == 0, err
    assert "train: epoch 1:" in out and f"--model {model}" in out
    name = json.loads(ModelDir(model).manifest.read_text())["name"]

    # Side by side with the bundled net, on the same faces.
    code, out, err = gimg("evaluate", labels, "--model", "onnx", "--model", model, "--out", tmp_path / "cmp",
                          "--workers", "1")
    assert code == 0, err
    summary = pd.read_csv(Layout(tmp_path / "cmp").comparison_csvs["summary"])
    assert summary.model.tolist() == ["onnx", str(model)] and (summary.faces >= 45).all()
    assert "faces on which they disagree" in out and str(model) in out

    # One model: today's evaluation, of the trained model, with the heat maps of its mistakes.
    code, out, err = gimg("evaluate", labels, "--model", model, "--out", tmp_path / "eval", "--workers", "1",
                          "--heatmaps", "2")
    assert code == 0, err
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert evaluation["model"] == name and name in evaluation["model_version"]
    assert "fine-tuned by gimg" in evaluation["model_version"]
    assert (tmp_path / "eval" / "misclassified_heatmaps.png").is_file()

    # classify a study's crops with it (the compared folder has crops and no dataset yet), then analyze:
    # the correction comes from the model folder's own evaluation.json.
    study = Layout(tmp_path / "cmp")
    code, out, err = gimg("classify", "--out", study.out, "--model", model, "--workers", "1")
    assert code == 0, err
    assert set(pd.read_csv(study.dataset("evaluation")).model) == {name}
    recorded = json.loads(settings_path(study.dataset("evaluation")).read_text())
    assert recorded["model"] == str(model.resolve()) and recorded["name"] == name
    code, out, err = gimg("analyze", "--out", study.out, "--min-faces", "5", "--resamples", "200")
    assert code == 0, err
    analysis = json.loads(study.analysis_json.read_text())
    assert analysis["evaluation"]["model"] == name
    assert analysis["evaluation"]["domain"] == "model"
    assert analysis["evaluation_source"] == f"the validation split of the model trained in {model.resolve()}"
    given = tmp_path / "eval" / "evaluation.json"
    code, out, err = gimg("analyze", "--out", study.out, "--min-faces", "5", "--resamples", "200", "--evaluation", given)
    assert code == 0, err
    assert json.loads(study.analysis_json.read_text())["evaluation_source"] == str(given)

    # A model retrained in the same folder is another model: the classification is redone, not skipped.
    code, out, err = gimg("train", labels, "--out", model, "--epochs", "1", "--patience", "1", "--seed", "3",
                          "--workers", "1")
    assert code == 0, err
    code, out, err = gimg("classify", "--out", study.out, "--model", model, "--workers", "1")
    assert code == 0 and "1 done, 0 already done" in out, out
    assert set(pd.read_csv(study.dataset("evaluation")).model) != {name}

    face = study.cropped("evaluation") / "00001_0.jpg"
    code, out, err = gimg("explain", face, "--model", model, "--method", "gradient")
    assert code == 0, err
    assert (face.parent / "00001_0.heatmap.png").is_file()


def test_bad_models_and_gpu_are_one_line_and_exit_2(gimg, fixtures, tmp_path):
    code, _, err = gimg("explain", fixtures / "faces" / "labels.csv", "--model", tmp_path)
    line = one_line(err)
    assert code == 2 and "onnx, caffe" in line and "gimg train" in line
    code, _, err = gimg("train", tmp_path / "missing.csv", "--out", tmp_path / "m")
    assert code == 2 and "not found" in one_line(err)
    code, _, err = gimg("train", fixtures / "faces" / "labels.csv", "--out", tmp_path / "m",
                        "--validation-share", "0.9")
    assert code == 2 and "--validation-share" in one_line(err)
    code, _, err = gimg("explain", fixtures / "faces" / "labels.csv", "--method", "saliency")
    assert code == 2 and "saliency" in one_line(err)
    code, out, err = gimg("explain", fixtures / "faces" / "labels.csv")
    assert code == 1 and "failed" in err
