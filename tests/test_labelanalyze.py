"""`gimg label` through the CLI, and `gimg analyze` correcting with the study's own error rates."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from labelstudy import copy_study
from test_validation import hand_labels

from gimg.cli import cli
from gimg.correction import default_evaluation_path
from gimg.layout import Layout
from gimg.validation import read_sample

ANALYZE = ("--resamples", "400", "--min-faces", "5")


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def write_labels(path, rows: list[tuple[str, str, str]]):
    path.write_text("item,rater,label\n" + "".join(f"{item},{rater},{label}\n" for item, rater, label in rows))
    return path


def truthlike_labels(sample: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Rater ana answers as the classifier predicted, but for one man called a woman, one woman called a man and one
    face that is no face; rater ben agrees with ana except on one face."""
    answers = dict(zip(sample["item"], sample["predicted"]))
    called_female = sample.loc[sample["predicted"] == "female", "item"].tolist()
    called_male = sample.loc[sample["predicted"] == "male", "item"].tolist()
    answers[called_female[0]] = "male"
    answers[called_male[0]] = "female"
    answers[called_male[1]] = "not_a_face"
    rows = [(item, "ana", label) for item, label in answers.items()]
    ben = dict(answers, **{called_female[1]: "unclear"})
    return rows + [(item, "ben", label) for item, label in ben.items()]


@pytest.fixture
def labelled(label_study, tmp_path, gimg):
    """A copy of the label study with a sample of 24 faces drawn and labelled by two raters, through the CLI."""
    out = copy_study(label_study, tmp_path / "out")
    code, said, _ = gimg("label", "sample", "--out", out, "--n", "24")
    assert code == 0 and "24 faces in" in said
    labels = write_labels(tmp_path / "labels.csv", truthlike_labels(read_sample(out)))
    code, said, _ = gimg("label", "import", labels, "--out", out)
    assert code == 0 and "24 answers of rater ana" in said and "24 answers of rater ben" in said
    return out


def analysis(out) -> dict:
    return json.loads(Layout(out).analysis_json.read_text())


def test_every_label_command_has_help_with_an_example(gimg):
    for name, command in cli.commands["label"].commands.items():
        code, said, _ = gimg("label", name, "--help")
        assert code == 0 and "Example: gimg label " + name in said
        assert all(option.help for option in command.params if option.param_type_name == "option")


def test_analyze_runs_the_label_report_and_corrects_with_the_studys_own_rates(labelled, gimg):
    layout = Layout(labelled)
    assert not layout.study_evaluation.exists()
    code, said, _ = gimg("analyze", "--out", labelled, *ANALYZE)
    assert code == 0, said
    document = analysis(labelled)
    assert document["evaluation"]["domain"] == "study"
    study = json.loads(layout.study_evaluation.read_text())["study"]
    assert study["labelled"] == 24 and study["agreement"]["raters"] == 2
    assert study["counting"] == {"policy": "biggest", "cutoff": 0.5, "min_box": 0}
    share, s, a = study["sensitivity"], study["nonperson_share"], study["nonperson_called_female"]
    assert 0 < s < 1 and share < 1
    summary = pd.read_csv(layout.summary_csv)
    raw = summary["share_women"].to_numpy()
    by_hand = ((raw - s * a) / (1 - s) + study["specificity"] - 1) / (study["sensitivity"] + study["specificity"] - 1)
    np.testing.assert_allclose(summary["corrected_share"], np.clip(by_hand, 0, 1), atol=1e-9)
    plain = (raw + study["specificity"] - 1) / (study["sensitivity"] + study["specificity"] - 1)
    assert not np.allclose(np.clip(plain, 0, 1), summary["corrected_share"]), "non-persons must be taken out"
    assert (summary["corrected_low"] <= summary["corrected_share"] + 1e-9).all()
    html = layout.report_html.read_text()
    assert "this study's own faces" in html and "Krippendorff" in html and "(ana, ben)" in html
    assert 'class="warning"' not in html


def test_the_evaluation_names_where_its_rates_come_from(labelled, gimg, tmp_path):
    layout = Layout(labelled)
    assert gimg("label", "report", "--out", labelled, "--resamples", "200")[0] == 0
    shipped = default_evaluation_path("onnx")
    for given, domain in ((shipped, "file"), (layout.study_evaluation, "study")):
        assert gimg("analyze", "--out", labelled, "--evaluation", given, *ANALYZE)[0] == 0
        assert analysis(labelled)["evaluation"]["domain"] == domain
    shutil.move(layout.validation, tmp_path / "validation_elsewhere")
    assert gimg("analyze", "--out", labelled, *ANALYZE)[0] == 0
    assert analysis(labelled)["evaluation"]["domain"] == "shipped"
    html = layout.report_html.read_text()
    warning = html[html.index('class="warning"'):]
    assert all(figure in warning[:1500] for figure in ("0.860", "0.816", "0.905", "77% [64%, 89%]"))


def test_a_sample_counted_otherwise_is_refused(labelled, gimg):
    code, _, err = gimg("analyze", "--out", labelled, "--policy", "all", *ANALYZE)
    line = one_line(err)
    assert code == 2 and "policy biggest" in line and "policy all" in line and "--evaluation" in line


def test_a_changed_study_is_noted(labelled, gimg):
    layout = Layout(labelled)
    dataset = pd.read_csv(layout.dataset("nurse"))
    dataset.iloc[1:].to_csv(layout.dataset("nurse"), index=False)
    code, said, _ = gimg("analyze", "--out", labelled, *ANALYZE)
    assert code == 0
    notes = analysis(labelled)["notes"]
    assert any("other counted faces than now (nurse)" in note for note in notes), notes
    assert "other counted faces than now (nurse)" in said


def test_a_rate_no_label_shows_an_error_of_is_noted(label_study, tmp_path, gimg):
    out = copy_study(label_study, tmp_path / "out")
    assert gimg("label", "sample", "--out", out, "--n", "12")[0] == 0
    sample = read_sample(out)
    answers = [(item, "ana", kind) for item, kind in zip(sample["item"], sample["predicted"])]
    write_labels(tmp_path / "labels.csv", answers)
    assert gimg("label", "import", tmp_path / "labels.csv", "--out", out)[0] == 0
    assert gimg("analyze", "--out", out, *ANALYZE)[0] == 0
    notes = analysis(out)["notes"]
    for rate in ("sensitivity", "specificity"):
        assert any(f"no labelled face shows an error of the {rate} (1.000)" in note for note in notes), notes
    assert "labels cannot tell how many more" in Layout(out).report_html.read_text()


def test_labels_that_give_no_rates_yet_leave_the_analysis_to_the_shipped_rates(label_study, tmp_path, gimg):
    out = copy_study(label_study, tmp_path / "out")
    assert gimg("label", "sample", "--out", out, "--n", "12")[0] == 0
    sample = read_sample(out)
    only_female = sample.loc[sample["predicted"] == "female", "item"]
    write_labels(tmp_path / "labels.csv", [(item, "ana", "female") for item in only_female])
    assert gimg("label", "import", tmp_path / "labels.csv", "--out", out)[0] == 0
    code, _, err = gimg("label", "report", "--out", out)
    assert code == 2 and "called male" in one_line(err)
    code, said, _ = gimg("analyze", "--out", out, *ANALYZE)
    assert code == 0 and "give no error rates" in said
    assert analysis(out)["evaluation"]["domain"] == "shipped"


def test_import_and_agreement_by_hand_through_the_cli(label_study, tmp_path, gimg):
    """The hand-computed case of test_validation (alpha 4/7, 5/8 on gender), imported and reported by the CLI; the
    other sampled faces get one rater's answer each, which does not change the agreement."""
    out = copy_study(label_study, tmp_path / "out")
    assert gimg("label", "sample", "--out", out, "--n", "12")[0] == 0
    sample = read_sample(out)
    items = sample["item"].tolist()
    rest = "".join(f"{item},A,{kind}\n" for item, kind in zip(items[5:], sample["predicted"][5:]))
    (tmp_path / "labels.csv").write_text(hand_labels(items[:5]) + rest)
    code, said, _ = gimg("label", "import", tmp_path / "labels.csv", "--out", out)
    assert code == 0 and "12 answers of rater A" in said and "3 answers of rater C" in said
    code, said, err = gimg("label", "report", "--out", out, "--resamples", "200")
    assert code == 0, err
    assert "12 faces labelled by 3 rater(s); 5 by two or more" in said
    assert "Krippendorff's alpha 0.571 (female/male only 0.625)" in said
    assert "2 faces with disagreement" in said
    majority = pd.read_csv(Layout(out).majority_csv).set_index("item")["majority"]
    assert majority.loc[items[:5]].tolist() == ["female", "male", "unclear", "female", "not_a_person"]


def test_a_bad_import_is_one_line_and_imports_nothing(label_study, tmp_path, gimg):
    out = copy_study(label_study, tmp_path / "out")
    assert gimg("label", "sample", "--out", out, "--n", "4")[0] == 0
    item = read_sample(out)["item"].iloc[0]
    write_labels(tmp_path / "labels.csv", [(item, "ana", "female"), (item, "ben", "woman")])
    code, _, err = gimg("label", "import", tmp_path / "labels.csv", "--out", out)
    assert code == 2 and "line 3: unknown label 'woman'" in one_line(err)
    assert not list(Layout(out).labels.glob("*.csv"))


def test_label_sample_takes_the_counting_options_of_a_study_file_but_not_its_bootstrap_seed(label_study, tmp_path,
                                                                                           gimg):
    out = copy_study(label_study, tmp_path / "out")
    study = tmp_path / "study.toml"
    study.write_text('[analyze]\npolicy = "all"\nseed = 7\n')
    assert gimg("label", "sample", "--out", out, "--config", study, "--n", "6")[0] == 0
    settings = json.loads((Layout(out).validation / "sample.settings.json").read_text())
    assert settings == {"seed": 0, "counting": {"policy": "all", "cutoff": 0.5, "min_box": 0}}
