"""Regression: evaluate breaks results down by groups whose labels are missing, mixed or unexpected."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from gimg.evaluate import group_columns, run_evaluate, summarize
from gimg.options import EvaluateOptions, ExecutionOptions


def _scored() -> pd.DataFrame:
    """Six faces: a race and an age missing, ages as text, extra columns; two mistakes (rows 1 and 4)."""
    return pd.DataFrame({
        "file": [f"{i}.jpg" for i in range(6)],
        "gender": ["female", "female", "male", "male", "female", "male"],
        "race": ["white", "black", np.nan, "white", "black", "east_asian/white"],
        "age": [25, np.nan, 50, "61", 33, 40],
        "identity": ["a", "b", "c", "d", "e", "f"],
        "p_female": [0.9, 0.2, 0.1, 0.3, 0.4, np.nan],
    })


def test_missing_group_labels_are_in_no_group():
    groups = group_columns(_scored())
    assert groups.race.isna().tolist() == [False, False, True, False, False, False]
    assert groups.age[0] == "<30" and pd.isna(groups.age[1])
    assert groups.age[3] == "60+"


def test_summarize_counts_each_labelled_face_once_and_skips_the_missing():
    evaluation, details = summarize(_scored(), cutoff=0.5, model="onnx:gender-v1", dataset="by hand", how="by hand",
                                    version="test")
    metrics = {**evaluation.to_json(), **details}
    assert metrics["counts"] == {"n": 5, "tp": 1, "fp": 0, "tn": 2, "fn": 2}
    assert metrics["no_face"] == 1
    races = {key: group for key, group in metrics["groups"].items() if key.startswith("race=")}
    assert sorted(races) == ["race=black", "race=east_asian/white", "race=white"]
    assert races["race=black"]["accuracy"] == 0.0 and races["race=white"]["accuracy"] == 1.0
    assert math.isnan(races["race=east_asian/white"]["accuracy"])  # its one face had no face found
    assert metrics["group_gaps"]["race"]["accuracy_gap"] == pytest.approx(1.0)
    ages = {key: group["n"] for key, group in metrics["groups"].items() if key.startswith("age=")}
    assert ages == {"age=30-44": 1, "age=45-59": 1, "age=60+": 1, "age=<30": 1}


def test_evaluate_runs_on_the_real_facelab_labels(shared_data, tmp_path):
    """The labels file that crashed `gimg evaluate` (two ages empty, extra columns, five ethnicities)."""
    labels = shared_data / "faces" / "facelab" / "labels.csv"
    assert pd.read_csv(labels).age.isna().sum() >= 1
    result = run_evaluate(labels, tmp_path, EvaluateOptions(heatmaps=0), execution=ExecutionOptions(workers=1))
    written = json.loads(result.json_path.read_text())
    assert written["counts"]["n"] + written["no_face"] == 142
    assert {"race=white", "race=black", "race=west_asian", "race=east_asian"} <= set(written["groups"])
    assert not any(key.endswith("=nan") for key in written["groups"])
