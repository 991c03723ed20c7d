"""`gimg evaluate` on real labelled faces, and its metrics on hand-checked numbers."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gimg.cli import main
from gimg.correction import default_evaluation_path
from gimg.errors import GimgError
from gimg.evaluate import calibration, confusion, rates, read_labels, run_evaluate
from gimg.options import ExecutionOptions


def test_confusion_and_rates_by_hand():
    truth = np.array([True, True, True, False, False])
    said = np.array([True, True, False, True, False])
    counts = confusion(truth, said)
    assert counts == {"n": 5, "tp": 2, "fn": 1, "tn": 1, "fp": 1}
    metrics = rates(counts)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["sensitivity"] == pytest.approx(2 / 3)
    assert metrics["specificity"] == pytest.approx(1 / 2)
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert metrics["f1"] == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))


def test_calibration_of_a_perfectly_calibrated_and_a_overconfident_model():
    truth = np.array([True] * 7 + [False] * 3)
    assert calibration(truth, np.full(10, 0.7))["ece"] == pytest.approx(0.0)
    assert calibration(truth, np.full(10, 0.99))["ece"] == pytest.approx(0.29)


def test_bad_labels_say_what_to_do(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,sex\na.jpg,f\n")
    with pytest.raises(GimgError, match="file,gender"):
        read_labels(path)
    path.write_text("file,gender\na.jpg,woman\n")
    with pytest.raises(GimgError, match="female or male"):
        read_labels(path)

TWO = ExecutionOptions(workers=2)


@pytest.fixture(scope="module")
def fixture_evaluation(tmp_path_factory, fixtures):
    return run_evaluate(fixtures / "faces" / "labels.csv", tmp_path_factory.mktemp("eval"), execution=TWO)


def test_evaluation_of_the_fixture_faces(fixture_evaluation, fixtures):
    metrics = json.loads(fixture_evaluation.json_path.read_text())
    labels = pd.read_csv(fixtures / "faces" / "labels.csv")
    assert metrics["counts"]["n"] + metrics["no_face"] == len(labels)
    assert metrics["no_face"] <= 2
    assert metrics["accuracy"] >= 0.85
    assert metrics["model"] == "onnx:gender-v1"
    assert {"race=White", "race=Black", "gender=female", "age=<30"} <= set(metrics["groups"])
    assert sum(g["n"] for k, g in metrics["groups"].items() if k.startswith("race=")) == metrics["counts"]["n"]
    races = {key.split("=", 1)[1]: group["accuracy"] for key, group in metrics["groups"].items()
             if key.startswith("race=")}
    gap = metrics["group_gaps"]["race"]
    assert (gap["best"], gap["worst"]) == (max(races, key=races.get), min(races, key=races.get))
    assert gap["accuracy_gap"] == pytest.approx(max(races.values()) - min(races.values()))
    assert sum(row["n"] for row in metrics["calibration"]["reliability"]) == metrics["counts"]["n"]
    predictions = pd.read_csv(fixture_evaluation.predictions_path)
    assert len(predictions) == len(labels)
    with Image.open(fixture_evaluation.contact_sheet_path) as sheet:
        wrong = metrics["counts"]["fp"] + metrics["counts"]["fn"]
        assert sheet.size == (112 * max(1, min(10, wrong)), 140 * max(1, -(-wrong // 10)))


def test_rerun_reuses_the_staged_work(fixture_evaluation, fixtures):
    dataset = fixture_evaluation.json_path.parent / "Datasets" / "evaluation.csv"
    stamp = dataset.stat().st_mtime_ns
    again = run_evaluate(fixtures / "faces" / "labels.csv", fixture_evaluation.json_path.parent,
                         execution=ExecutionOptions(workers=1))
    assert dataset.stat().st_mtime_ns == stamp
    assert again.metrics["counts"] == fixture_evaluation.metrics["counts"]


def test_cli_evaluate_reports_in_a_few_lines(monkeypatch, capsys, fixture_evaluation, fixtures):
    out = fixture_evaluation.json_path.parent
    monkeypatch.setattr(sys, "argv", ["gimg", "evaluate", str(fixtures / "faces" / "labels.csv"), "--out", str(out)])
    with pytest.raises(SystemExit) as done:
        main()
    assert (done.value.code or 0) == 0
    assert "accuracy" in capsys.readouterr().out


def test_the_shipped_evaluation_is_what_gimg_evaluate_measures(shared_data, tmp_path):
    """All 2,000 labelled faces through the default path: exactly the counts of the evaluation every analysis
    corrects with by default. A change that moves them must ship a new file, written by `gimg evaluate` itself."""
    result = run_evaluate(shared_data / "faces" / "utkface" / "labels.csv", tmp_path, execution=TWO)
    measured = json.loads(result.json_path.read_text(encoding="utf-8"))  # as written: an undefined rate is null
    shipped = json.loads(default_evaluation_path("onnx").read_text(encoding="utf-8"))
    print(json.dumps({k: measured[k] for k in ("counts", "accuracy", "sensitivity", "specificity", "no_face")}))
    for key in ("counts", "model", "cutoff", "dataset", "provenance", "no_face", "groups"):
        assert measured[key] == shipped[key], f"{key} moved: ship the new evaluation.json (see README)"
    assert measured["calibration"]["ece"] == pytest.approx(shipped["calibration"]["ece"], abs=1e-12)
