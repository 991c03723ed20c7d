"""The labelled sample of a real study: drawing it, importing labels, agreement and the study's error rates."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from labelstudy import PER_TERM, SHARES, copy_study

from gimg.correction import load_evaluation
from gimg.errors import GimgError
from gimg.labelreport import agreement, majority_labels, run_label_report
from gimg.layout import Layout
from gimg.options import AnalyzeOptions, SampleOptions
from gimg.studyrates import LABELS, cells_from_study, study_rates
from gimg.validation import (
    counted_faces,
    draw_sample,
    import_labels,
    read_labels,
    save_label,
    undo_label,
)

@pytest.fixture
def out(label_study, tmp_path):
    return copy_study(label_study, tmp_path / "out")


def test_sample_is_stratified_and_records_its_strata(out):
    faces = counted_faces(out)
    sample = draw_sample(out, SampleOptions(n=16, seed=1))
    strata = pd.read_csv(Layout(out).strata_csv)
    assert len(sample) == 16 and sample["item"].is_unique
    assert {"item", "term", "image", "crop", "predicted"} <= set(sample.columns)
    assert all((out / path).is_file() for path in [*sample["image"], *sample["crop"]])
    assert strata["faces"].sum() == len(faces) >= 0.9 * PER_TERM * len(SHARES)
    by_class = strata.groupby("predicted")["faces"].sum()
    assert by_class["female"] == (faces["p_female"] >= 0.5).sum()
    assert sorted(strata["term"].unique()) == sorted(SHARES)
    assert strata["sampled"].sum() == 16
    assert abs(sample["predicted"].eq("female").sum() - 8) <= 1  # both classes about half, however many faces each
    assert (strata.loc[strata["faces"] > 0, "sampled"] >= 1).all()  # every term and class that has faces
    assert (sample.groupby(["term", "predicted"]).size().to_dict()
            == strata.set_index(["term", "predicted"])["sampled"].loc[lambda s: s > 0].to_dict())


def test_drawing_more_adds_items_and_never_reshuffles(out, label_study, tmp_path):
    first = draw_sample(out, SampleOptions(n=10, seed=4))
    grown = draw_sample(out, SampleOptions(n=20, seed=4))
    assert grown["item"].head(10).tolist() == first["item"].tolist()
    assert len(grown) == 20
    assert draw_sample(out, SampleOptions(n=5, seed=4))["item"].tolist() == grown["item"].tolist()  # fixed once drawn
    fresh = copy_study(label_study, tmp_path / "fresh")
    assert draw_sample(fresh, SampleOptions(n=20, seed=4))["item"].tolist() == grown["item"].tolist()
    other = copy_study(label_study, tmp_path / "other")
    assert draw_sample(other, SampleOptions(n=20, seed=5))["item"].tolist() != grown["item"].tolist()


def test_the_same_study_downloaded_again_from_elsewhere_gets_the_same_sample(out, fixtures, tmp_path):
    """Item ids come from image content and boxes: another server port (so other URLs and file names) changes none."""
    from labelstudy import build_study

    again = build_study(tmp_path / "again", fixtures)
    names = [sorted(path.name for path in (study / "Downloaded_images").rglob("*.jpg")) for study in (again, out)]
    assert names[0] != names[1], "the file names hash the URLs, which name another port"
    assert (draw_sample(again, SampleOptions(n=20, seed=3))["item"].tolist()
            == draw_sample(out, SampleOptions(n=20, seed=3))["item"].tolist())


def test_another_seed_or_a_changed_study_is_refused(out):
    draw_sample(out, SampleOptions(n=10, seed=0))
    with pytest.raises(GimgError, match="drawn with"):
        draw_sample(out, SampleOptions(n=20, seed=1))
    with pytest.raises(GimgError, match="drawn with"):
        draw_sample(out, SampleOptions(n=20, seed=0), AnalyzeOptions(cutoff=0.6))
    dataset = out / "Datasets" / "nurse.csv"
    table = pd.read_csv(dataset)
    table.assign(p_female=1 - table["p_female"]).to_csv(dataset, index=False)
    with pytest.raises(GimgError, match="counted faces changed"):
        draw_sample(out, SampleOptions(n=20, seed=0))


def test_saving_refuses_bad_input_and_undo_takes_back_the_latest(out):
    sample = draw_sample(out, SampleOptions(n=6))
    items = sample["item"].tolist()
    with pytest.raises(GimgError, match="unknown label"):
        save_label(out, "ana", items[0], "woman")
    with pytest.raises(GimgError, match="unknown item"):
        save_label(out, "ana", "nope", "female")
    with pytest.raises(GimgError, match="not a safe file name"):
        save_label(out, "../ana", items[0], "female")
    assert not Layout(out).labels.exists() or not list(Layout(out).labels.glob("*.csv"))
    save_label(out, "ana", items[0], "female")
    save_label(out, "ana", items[1], "male")
    save_label(out, "ana", items[0], "unclear")  # a new answer replaces the old one
    assert undo_label(out, "ana")[0] == items[0]
    labels = read_labels(out)
    assert labels[["item", "label"]].values.tolist() == [[items[1], "male"]]


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("line", "problem"), [
    ("{item},ana,woman", "line 3: unknown label 'woman'"),
    ("unknown,ana,female", "line 3: unknown item 'unknown'"),
    ("{item},../ana,female", "line 3: rater name '../ana' is not a safe file name"),
    ("{first},ana,male", "line 3: item '{first}' is given twice for rater 'ana'"),
])
def test_import_refuses_a_bad_line_and_imports_nothing(out, tmp_path, line, problem):
    items = draw_sample(out, SampleOptions(n=4))["item"].tolist()
    source = _write(tmp_path / "labels.csv", f"item,rater,label\n{items[0]},ana,female\n"
                    + line.format(item=items[1], first=items[0]) + "\n")
    with pytest.raises(GimgError, match=problem.format(first=items[0]).replace("(", r"\(").replace(".", r"\.")) as error:
        import_labels(out, source)
    assert "nothing was imported" in str(error.value)
    assert read_labels(out).empty


# A case computed by hand (Krippendorff 2011, "Computing Krippendorff's alpha-reliability", nominal data):
#   item: A B C    ordered pairs / (m_u - 1) into the coincidence matrix o
#   i1:   F F F    o_FF += 3
#   i2:   M M M    o_MM += 3
#   i3:   F M -    o_FM += 1, o_MF += 1
#   i4:   F F U    o_FF += 1, o_FU += 1, o_UF += 1
#   i5:   P P -    o_PP += 2
# n = 13 pairable values; n_F = 6, n_M = 4, n_U = 1, n_P = 2.
# D_o = (1 + 1 + 1 + 1) / 13 = 4/13; D_e = (13^2 - (36 + 16 + 1 + 4)) / (13 * 12) = 112/156.
# alpha = 1 - D_o / D_e = 1 - (4 * 156) / (13 * 112) = 1 - 3/7 = 4/7.
# Female/male only (U and P dropped): n = 10, n_F = 6, n_M = 4, D_o = 2/10, D_e = 48/90, alpha = 1 - 3/8 = 5/8.
HAND_CASE = [("i1", "FFF"), ("i2", "MMM"), ("i3", "FM-"), ("i4", "FFU"), ("i5", "PP-")]
CODES = {"F": "female", "M": "male", "U": "unclear", "P": "not_a_person"}


def hand_labels(items: list[str]) -> str:
    lines = ["item,rater,label"]
    for item, (_, votes) in zip(items, HAND_CASE):
        lines += [f"{item},{rater},{CODES[vote]}" for rater, vote in zip(("A", "B", "C"), votes) if vote != "-"]
    return "\n".join(lines) + "\n"


def test_import_and_agreement_match_a_case_computed_by_hand(out, tmp_path):
    items = draw_sample(out, SampleOptions(n=8))["item"].tolist()[:5]
    assert import_labels(out, _write(tmp_path / "labels.csv", hand_labels(items))) == {"A": 5, "B": 5, "C": 3}
    labels = read_labels(out)
    agreed = agreement(labels)
    assert agreed.alpha == pytest.approx(4 / 7)
    assert agreed.alpha_gender == pytest.approx(5 / 8)
    assert (agreed.raters, agreed.items, agreed.items_with_two_or_more, agreed.pairable_values) == (3, 5, 5, 13)
    assert agreed.percent_agreement == pytest.approx(3 / 5)
    majority = majority_labels(labels).set_index("item")["majority"]
    assert majority.loc[items].tolist() == ["female", "male", "unclear", "female", "not_a_person"]


def test_one_rater_has_no_agreement_to_measure(out):
    items = draw_sample(out, SampleOptions(n=3))["item"].tolist()
    for item in items:
        save_label(out, "solo", item, "female")
    agreed = agreement(read_labels(out))
    assert math.isnan(agreed.alpha) and "no item has two raters" in agreed.note


def test_report_weights_the_cells_by_their_sizes(out, tmp_path):
    """Label every sampled face as predicted, but one man among the faces called female in one cell, one woman among
    those called male in another, and one non-person: the rates follow from the strata by hand."""
    sample = draw_sample(out, SampleOptions(n=30, seed=2))
    strata = pd.read_csv(Layout(out).strata_csv).set_index(["term", "predicted"])
    labels = dict(zip(sample["item"], sample["predicted"]))
    cells = sample.groupby(["term", "predicted"])["item"].apply(list)
    (fp_cell, fp_items), (fn_cell, fn_items) = next(
        ((key, value) for key, value in cells.items() if key[1] == "female" and len(value) >= 2)), next(
        ((key, value) for key, value in cells.items() if key[1] == "male" and len(value) >= 3))
    labels[fp_items[0]] = "male"
    labels[fn_items[0]] = "female"
    labels[fn_items[1]] = "not_a_face"
    lines = "item,rater,label\n" + "".join(f"{item},ana,{label}\n" for item, label in labels.items())
    import_labels(out, _write(tmp_path / "labels.csv", lines))
    report = run_label_report(out, AnalyzeOptions(resamples=400))

    faces = strata["faces"]
    called_female, called_male = faces.xs("female", level=1).sum(), faces.xs("male", level=1).sum()
    false_positive = faces[fp_cell] / len(fp_items)
    false_negative = faces[fn_cell] / len(fn_items)
    nonperson = faces[fn_cell] / len(fn_items)
    true_positive = called_female - false_positive
    true_negative = called_male - false_negative - nonperson
    study = report.evaluation.study
    assert study["sensitivity"] == pytest.approx(true_positive / (true_positive + false_negative))
    assert study["specificity"] == pytest.approx(true_negative / (true_negative + false_positive))
    assert study["nonperson_share"] == pytest.approx(nonperson / (called_female + called_male))
    assert study["nonperson_called_female"] == 0
    assert study["labelled"] == 30 and study["agreement"]["raters"] == 1

    loaded = load_evaluation(report.evaluation_path)
    assert loaded.study["domain"] == "study"
    assert loaded.sensitivity == pytest.approx(study["sensitivity"])
    low, high = study["intervals"]["sensitivity"]
    assert low <= study["sensitivity"] <= high
    assert loaded.tp + loaded.fn <= 30  # effective counts: never more than the labelled faces
    document = json.loads(report.evaluation_path.read_text())
    assert document["format"] == "gimg-evaluation/1" and set(LABELS) == set(study["labelled_by_label"])
    assert set(study["labels_to_halve_interval_width"]) == {"sensitivity", "specificity"}
    assert len(study["per_term"]) == len(SHARES)
    assert report.disagreements.empty and len(report.majority) == 30
    assert study_rates(cells_from_study(loaded.study)).sensitivity == pytest.approx(study["sensitivity"])

