"""Models side by side: a case computed by hand, labels files as they come, and the real crop + backends path."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gimg.chipnet import default_net
from gimg.classify import OnnxGender
from gimg.sidebyside import compare_backends, gap_interval, group_labels, side_by_side, time_backends
from gimg.errors import GimgError
from gimg.evaluate import pad_to_scene
from gimg.facechips import DEFAULT_FRAMING, ChipSpec
from gimg.faces import detect_faces
from gimg.options import ExecutionOptions


def _labels() -> pd.DataFrame:
    """Eight faces: four women, four men; a missing race, a missing age, an extra column, ethnicities as text."""
    return pd.DataFrame({
        "file": [f"{i}.jpg" for i in range(8)],
        "gender": ["female", "female", "female", "female", "male", "male", "male", "Male "],
        "ethnicity": ["a", "a", "b", "b", "a", "a", "b", np.nan],
        "age": [20, 35, 50, np.nan, 20, 35, 50, 70],
        "identity": [f"p{i}" for i in range(8)],
        "notes": ["x"] * 8,
    })


def _predictions() -> dict[str, pd.DataFrame]:
    files = [f"{i}.jpg" for i in range(8)]
    first = [0.9, 0.8, 0.4, 0.7, 0.1, 0.6, 0.2, np.nan]  # one woman and one man wrong; no face on file 7
    second = [0.9, 0.8, 0.6, 0.7, 0.1, 0.2, 0.2, 0.3]  # all right
    return {"first": pd.DataFrame({"file": files, "p_female": first}),
            "second": pd.DataFrame({"file": files[::-1], "p_female": second[::-1]})}  # another row order


def test_the_table_by_hand():
    comparison = side_by_side(_labels(), _predictions(), ms_per_face={"first": 1.5, "second": 2.0})
    summary = comparison.summary.set_index("model")
    first, second = summary.loc["first"], summary.loc["second"]
    assert (first.faces, first.no_face) == (7, 1)
    assert first.accuracy == pytest.approx(5 / 7)
    assert first.sensitivity == pytest.approx(3 / 4) and first.specificity == pytest.approx(2 / 3)
    assert second.accuracy == 1.0 and second.faces == 8 and second.ms_per_face == 2.0
    # ethnicity a: faces 0,1,4,5 -> first gets 5 wrong: 3/4; b: faces 2,3,6 -> 2 wrong: 2/3; face 7 has no group
    groups = comparison.groups.set_index(["model", "column", "group"])
    assert groups.loc[("first", "ethnicity", "a"), "accuracy"] == pytest.approx(3 / 4)
    assert groups.loc[("first", "ethnicity", "b"), "accuracy"] == pytest.approx(2 / 3)
    assert first.ethnicity_gap == pytest.approx(3 / 4 - 2 / 3) and first.ethnicity_worst == "b"
    assert second.ethnicity_gap == 0
    assert set(groups.loc["first"].index.get_level_values("column")) == {"ethnicity", "age"}
    # ECE of the first model by hand: bins 0.1, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9 each hold one face
    truth = np.array([1, 1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.4, 0.7, 0.1, 0.6, 0.2])
    assert first.ece == pytest.approx(np.abs(p - truth).mean())
    assert comparison.disagreements.file.tolist() == ["5.jpg", "2.jpg"]  # spreads 0.4 and 0.2


def test_groups_of_a_real_looking_labels_file():
    groups = group_labels(_labels())
    assert list(groups.columns) == ["ethnicity", "age"]
    assert groups.age.tolist()[:3] == ["<30", "30-44", "45-59"] and pd.isna(groups.age[3])
    with pytest.raises(GimgError, match="race"):
        group_labels(_labels(), ["race"])


def test_what_cannot_be_compared_is_refused_in_one_line():
    predictions = _predictions()
    with pytest.raises(GimgError, match="same faces"):
        side_by_side(_labels(), {"first": predictions["first"].head(5)})
    with pytest.raises(GimgError, match="file,gender"):
        side_by_side(_labels().drop(columns="gender"), predictions)
    with pytest.raises(GimgError, match="female or male"):
        side_by_side(_labels().assign(gender="unclear"), predictions)
    with pytest.raises(GimgError, match="p_female"):
        side_by_side(_labels(), {"first": predictions["first"].rename(columns={"p_female": "score"})})
    with pytest.raises(GimgError, match="no model"):
        side_by_side(_labels(), {})


def test_two_backends_on_the_fixture_faces_through_the_real_crop_stage(fixtures, tmp_path):
    backends = {"onnx": OnnxGender(), "onnx, 32 px chip": default_net(ChipSpec())}
    result = compare_backends(fixtures / "faces" / "labels.csv", backends, tmp_path,
                              execution=ExecutionOptions(workers=1))
    summary = result.comparison.summary.set_index("model")
    labels = pd.read_csv(fixtures / "faces" / "labels.csv")
    assert (summary.faces + summary.no_face == len(labels)).all()
    assert summary.faces.nunique() == 1 and (summary.ms_per_face > 0).all()
    assert (summary.accuracy >= 0.85).all() and not math.isnan(summary.loc["onnx", "race_gap"])
    assert result.paths["summary"].is_file() and result.paths["disagreements"].is_file()
    for model, frame in result.predictions.items():
        assert len(frame) == len(labels) and frame.p_female.notna().sum() == summary.loc[model, "faces"]


class _Constant:
    """A backend that says the same p_female for every face and counts the faces it saw."""

    def __init__(self, value: float) -> None:
        self.value, self.seen = value, 0

    def predict(self, crops):
        self.seen += len(crops)
        return np.full(len(crops), self.value)


def test_backends_take_turns_on_every_face():
    first, second = _Constant(0.2), _Constant(0.9)
    crops = [(np.zeros((4, 4, 3), np.uint8), None)] * 150
    p_female, timings = time_backends({"first": first, "second": second}, crops, runs=2, chunk=64)
    assert p_female["first"].tolist() == [0.2] * 150 and p_female["second"].tolist() == [0.9] * 150
    assert first.seen == second.seen == 1 + 2 * 150  # one warm-up face, then every face in each run
    assert set(timings) == {"first", "second"} and all(value >= 0 for value in timings.values())


def test_the_gap_interval_covers_what_chance_makes():
    low, high = gap_interval([(120, 116), (120, 116), (120, 116)])  # the same accuracy in three groups of 120
    assert low >= 0 and 0.02 < high < 0.08  # chance alone gives gaps of a few points at this size
    low, high = gap_interval([(5000, 4900), (5000, 4500)])  # 98% against 90% in large groups
    assert low == pytest.approx(0.08, abs=0.015) and high == pytest.approx(0.08, abs=0.015)


def test_the_default_net_with_the_default_framing_is_onnxgender(fixtures):
    crops = []
    for name in pd.read_csv(fixtures / "faces" / "labels.csv").file.head(6):
        with Image.open(fixtures / "faces" / "images" / name) as image:
            padded = np.asarray(pad_to_scene(image))
        crops += [(padded, box) for box in detect_faces(padded)[:1]]
    assert np.array_equal(default_net(DEFAULT_FRAMING).predict(crops), OnnxGender().predict(crops))
    assert not np.array_equal(default_net(ChipSpec(supersample=4)).predict(crops), default_net(ChipSpec()).predict(crops))
