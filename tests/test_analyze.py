"""gimg.analyze on an output tree with known answers: policies, shares, corrections, correlations, plot and report."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from gimg.analyze import SUMMARY_COLUMNS, biggest_faces
from gimg.correction import Evaluation, write_evaluation
from gimg.errors import GimgError, MissingInputError
from gimg.layout import Layout, write_csv
from gimg.options import AnalyzeOptions
from gimg.pipeline import run_analyze

MANIFEST_COLUMNS = ["rank", "url", "source_page", "engine", "time", "sha256", "status", "error", "file"]
DATASET_COLUMNS = ["file", "p_female", "height", "width", "image", "face", "left", "top", "right", "bottom", "model"]
CENSUS_COLUMNS = ["term", "bls_occupation", "bls_share_women", "bls_employed_thousands", "source"]

# term -> images in rank order: (status, [(box side in px, p_female), ...]); the first face is not always biggest.
TREE = {
    "nurse": [
        ("downloaded", [(40, 0.10), (90, 0.90)]),  # biggest face female
        ("downloaded", [(90, 0.20), (40, 0.95)]),  # biggest face male
        ("downloaded", []),  # no face
        ("downloaded", [(60, 0.50)]),  # exactly at the cutoff: a woman at 0.5, a man at 0.6
        ("failed", []),
        ("duplicate", []),
    ],
    "plumber": [("downloaded", [(50, 0.1)]), ("downloaded", [(50, 0.2)]), ("downloaded", [(50, 0.7)])],
    "software developer": [("downloaded", [(30, 0.8), (20, 0.1), (10, 0.1)]), ("downloaded", [(50, 0.3)])],
    "astronaut": [("downloaded", [(70, 0.9)])],
    "ghost writer": [("downloaded", []), ("downloaded", []), ("rejected", [])],
}
CENSUS = {"nurse": 0.9, "plumber": 0.02, "software developer": 0.2, "ghost writer": 0.5, "chef": 0.27}
# sensitivity 0.9, specificity 0.8: a corrected share is (raw - 0.2) / 0.7
EVALUATION = Evaluation(model="onnx", model_version="test", dataset="made up", cutoff=0.5,
                        tp=90, fp=20, tn=80, fn=10, provenance="a test")
EXPECTED = {  # term -> (images, images_with_face, women at cutoff 0.5)
    "nurse": (4, 3, 2),
    "plumber": (3, 3, 1),
    "software developer": (2, 2, 1),
    "astronaut": (1, 1, 1),
    "ghost writer": (2, 0, 0),
}


def write_tree(out: Path, tree: dict = TREE, *, model: str = "onnx") -> Layout:
    """Write terms.csv, manifests and Datasets CSVs (the contract's exact columns) for a synthetic study."""
    layout = Layout(out)
    layout.remember_terms(list(tree))
    for term, images in tree.items():
        manifest, faces = [], []
        for rank, (status, boxes) in enumerate(images, start=1):
            name = f"{rank:04d}_{rank:08x}.jpg" if status == "downloaded" else ""
            manifest.append(
                {"rank": rank, "url": f"http://127.0.0.1/{rank}.jpg", "source_page": "", "engine": "urls",
                 "time": "2026-01-01T00:00:00Z", "sha256": "0" * 64, "status": status, "error": "", "file": name}
            )
            for index, (side, p_female) in enumerate(boxes):
                left, top = 10 + 100 * index, 20
                faces.append(
                    {"file": f"{Path(name).stem}_{index}.jpg", "p_female": p_female, "height": side, "width": side,
                     "image": name, "face": index, "left": left, "top": top, "right": left + side,
                     "bottom": top + side, "model": model}
                )
        write_csv(layout.manifest(term), manifest, MANIFEST_COLUMNS)
        write_csv(layout.dataset(term), faces, DATASET_COLUMNS)
    return layout


def write_census(path: Path, shares: dict = CENSUS) -> Path:
    """A census table in professions.csv's format."""
    rows = [{"term": term, "bls_occupation": term.title(), "bls_share_women": share,
             "bls_employed_thousands": 100, "source": "test"} for term, share in shares.items()]
    write_csv(path, rows, CENSUS_COLUMNS)
    return path


def write_test_evaluation(path: Path, evaluation: Evaluation = EVALUATION) -> Path:
    """The test's evaluation file: sensitivity 0.9, specificity 0.8."""
    write_evaluation(evaluation, path)
    return path


def analyse(tmp_path: Path, tree: dict = TREE, **options):
    """Write the tree, census and evaluation, and analyse them; every term with a face enters the comparison."""
    write_tree(tmp_path / "out", tree, model=options.pop("model", "onnx"))
    options.setdefault("evaluation", write_test_evaluation(tmp_path / "evaluation.json"))
    options.setdefault("min_faces", 1)
    census = write_census(tmp_path / "census.csv")
    return run_analyze(tmp_path / "out", AnalyzeOptions(census=census, resamples=400, **options))


@pytest.fixture
def analysed(tmp_path):
    return analyse(tmp_path)


def test_counts_and_shares(analysed):
    summary = analysed.summary.set_index("term")
    assert list(analysed.summary.columns) == SUMMARY_COLUMNS
    assert list(summary.index) == list(TREE)
    for term, (images, with_face, women) in EXPECTED.items():
        assert tuple(summary.loc[term, ["images", "images_with_face", "women"]]) == (images, with_face, women)
    assert summary.loc["nurse", "share_women"] == 2 / 3
    assert summary.loc["plumber", "share_women"] == 1 / 3
    assert summary.loc["software developer", "share_women"] == 0.5
    assert math.isnan(summary.loc["ghost writer", "share_women"])
    assert summary.loc["nurse", "difference"] == pytest.approx(2 / 3 - 0.9)
    assert math.isnan(summary.loc["astronaut", "census_share_women"])
    assert analysed.without_census == ["astronaut"]
    assert analysed.models == ["onnx"]
    assert summary["faces"].tolist() == [3, 3, 2, 1, 0]


def test_corrected_shares_and_clipping(analysed):
    summary = analysed.summary.set_index("term")
    for term in ("nurse", "plumber", "software developer"):
        raw = summary.loc[term, "share_women"]
        assert summary.loc[term, "corrected_share"] == pytest.approx((raw - 0.2) / 0.7)
        assert summary.loc[term, "corrected_low"] <= summary.loc[term, "corrected_share"]
        assert summary.loc[term, "corrected_share"] <= summary.loc[term, "corrected_high"]
        assert summary.loc[term, "share_low"] <= raw <= summary.loc[term, "share_high"]
    assert summary.loc["astronaut", "corrected_share"] == 1.0  # (1 - 0.2) / 0.7 > 1, clipped
    assert summary["clipped"].tolist() == [False, False, False, True, False]
    assert summary.loc["nurse", "corrected_difference"] == pytest.approx((2 / 3 - 0.2) / 0.7 - 0.9)
    assert math.isnan(summary.loc["ghost writer", "corrected_share"])
    assert analysed.evaluation == EVALUATION and analysed.notes == []


def test_correlations_match_scipy(analysed):
    census = [0.9, 0.02, 0.2]
    search = [(share - 0.2) / 0.7 for share in (2 / 3, 1 / 3, 1 / 2)]
    pearson, spearman = stats.pearsonr(census, search), stats.spearmanr(census, search)
    assert analysed.n_terms == 3
    assert analysed.pearson_r == pytest.approx(pearson.statistic)
    assert analysed.pearson_p == pytest.approx(pearson.pvalue)
    assert analysed.spearman_rho == pytest.approx(spearman.statistic)
    assert analysed.spearman_p == pytest.approx(spearman.pvalue)
    assert analysed.correlation_note == ""
    assert -1 <= analysed.pearson_ci[0] <= analysed.pearson_ci[1] <= 1
    assert analysed.mean_difference == pytest.approx(sum(s - c for s, c in zip(search, census)) / 3)
    low, high = analysed.mean_difference_ci
    assert low < analysed.mean_difference < high


POLICY_CASES = {  # (face policy, min face px) -> term -> (images_with_face, faces, women)
    ("biggest", 0): {"nurse": (3, 3, 2), "plumber": (3, 3, 1), "software developer": (2, 2, 1)},
    ("all", 0): {"nurse": (3, 5, 3), "plumber": (3, 3, 1), "software developer": (2, 4, 1)},
    ("single", 0): {"nurse": (3, 1, 1), "plumber": (3, 3, 1), "software developer": (2, 1, 0)},
    ("biggest", 50): {"nurse": (3, 3, 2), "plumber": (3, 3, 1), "software developer": (1, 1, 0)},
    ("all", 70): {"nurse": (2, 2, 1), "plumber": (0, 0, 0), "software developer": (0, 0, 0)},
    ("single", 50): {"nurse": (3, 3, 2), "plumber": (3, 3, 1), "software developer": (1, 1, 0)},
    ("single", 15): {"nurse": (3, 1, 1), "plumber": (3, 3, 1), "software developer": (2, 1, 0)},
}


@pytest.mark.parametrize(("policy", "min_face"), list(POLICY_CASES))
def test_face_policies(tmp_path, policy, min_face):
    result = analyse(tmp_path, policy=policy, min_box=min_face)
    summary = result.summary.set_index("term")
    for term, (with_face, faces, women) in POLICY_CASES[policy, min_face].items():
        assert tuple(summary.loc[term, ["images_with_face", "faces", "women"]]) == (with_face, faces, women), term
    assert (result.options.policy, result.options.min_box) == (policy, min_face)
    html = result.report_html.read_text(encoding="utf-8")
    assert {"biggest": "biggest face", "all": "all faces", "single": "exactly one face"}[policy] in html
    assert (f"side under <b>{min_face} px</b>" in html) == bool(min_face)


def test_terms_with_too_few_faces_are_flagged_and_left_out(tmp_path):
    result = analyse(tmp_path, min_faces=3)
    summary = result.summary.set_index("term")
    assert summary["too_few_faces"].tolist() == [False, False, True, True, True]
    assert result.n_terms == 2 and "at least 3" in result.correlation_note
    assert math.isnan(result.pearson_r) and all(math.isnan(value) for value in result.pearson_ci)
    corrected = [(2 / 3 - 0.2) / 0.7 - 0.9, (1 / 3 - 0.2) / 0.7 - 0.02]
    assert result.mean_difference == pytest.approx(sum(corrected) / 2)
    assert "too few faces" in result.report_html.read_text(encoding="utf-8")


def test_same_seed_same_intervals(tmp_path):
    tree = {"nurse": [("downloaded", [(50, rank % 3 / 2)]) for rank in range(40)]}
    first = analyse(tmp_path / "a", tree, seed=7).summary
    again = analyse(tmp_path / "b", tree, seed=7).summary
    other = analyse(tmp_path / "c", tree, seed=8).summary
    pd.testing.assert_frame_equal(first, again)
    assert not first["corrected_low"].equals(other["corrected_low"])


def test_without_an_evaluation_nothing_is_corrected(tmp_path):
    result = analyse(tmp_path, model="caffe:levi-hassner", evaluation=None)
    summary = result.summary.dropna(subset=["share_women"])
    assert result.evaluation is None
    assert (summary["corrected_share"] == summary["share_women"]).all() and not summary["clipped"].any()
    assert "NOT corrected" in result.notes[0]
    assert "NOT corrected" in result.report_html.read_text(encoding="utf-8")


def test_the_shipped_evaluation_is_the_default(tmp_path):
    result = analyse(tmp_path, model="onnx:gender-v1", evaluation=None)
    assert result.evaluation.model == "onnx:gender-v1" and "evaluation-onnx.json" in result.evaluation_source
    assert result.notes == []


@pytest.mark.parametrize(
    ("options", "note"),
    [({"model": "caffe:levi-hassner"}, "the evaluation is of onnx"), ({"cutoff": 0.6}, "only approximate")],
)
def test_an_evaluation_that_fits_poorly_is_noted(tmp_path, options, note):
    result = analyse(tmp_path, **options)
    assert any(note in text for text in result.notes)
    assert note in result.report_html.read_text(encoding="utf-8")


def test_analysis_json_records_the_options(analysed, tmp_path):
    document = json.loads(analysed.layout.analysis_json.read_text(encoding="utf-8"))
    assert document["options"] == {"census": str(tmp_path / "census.csv"), "cutoff": 0.5,
                                   "evaluation": str(tmp_path / "evaluation.json"), "policy": "biggest", "min_box": 0,
                                   "min_faces": 1, "resamples": 400, "seed": 0, "codes": None}
    assert document["evaluation"]["counts"]["tp"] == 90
    assert document["pearson_r"] == pytest.approx(analysed.pearson_r)
    assert len(document["pearson_ci"]) == 2


def test_summary_csv_round_trips(analysed):
    written = pd.read_csv(analysed.layout.summary_csv, keep_default_na=False, na_values=[""])
    assert list(written.columns) == SUMMARY_COLUMNS
    pd.testing.assert_frame_equal(written, analysed.summary, check_dtype=False)


def test_scatter_is_a_png(analysed):
    with Image.open(analysed.layout.scatter_png) as image:
        assert image.format == "PNG"
        assert image.width >= 600 and image.height >= 600


def test_report_is_self_contained(analysed):
    html = analysed.report_html.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html
    for text in ("biggest face", "0.5", "onnx", "astronaut", "ghost writer", "gimg 0.", "UTC", "Rogan", "400 bootstrap",
                 "sensitivity 0.900", "specificity 0.800", "a test"):
        assert text in html
    rows = re.findall(r"<tr><td>([^<]+)</td>", html)
    assert rows == ["nurse", "plumber", "software developer", "astronaut", "ghost writer"]  # by corrected difference


def test_cutoff_is_respected(tmp_path):
    result = analyse(tmp_path, cutoff=0.6)
    summary = result.summary.set_index("term")
    assert summary.loc["nurse", "women"] == 1
    assert summary.loc["plumber", "women"] == 1
    assert summary.loc["software developer", "women"] == 1


def test_one_term_reports_why_there_is_no_correlation(tmp_path):
    result = analyse(tmp_path, {"nurse": TREE["nurse"]})
    assert result.summary["share_women"].tolist() == [2 / 3]
    assert math.isnan(result.pearson_r) and math.isnan(result.spearman_rho)
    assert "at least 3" in result.correlation_note
    assert "at least 3" in result.report_html.read_text(encoding="utf-8")


def test_terms_without_faces_only(tmp_path):
    result = analyse(tmp_path, {"ghost writer": TREE["ghost writer"], "nurse": [("downloaded", [])]})
    assert result.summary["images_with_face"].tolist() == [0, 0]
    assert result.summary["share_women"].isna().all()
    assert result.report_html.exists() and result.layout.scatter_png.exists()


def test_unclassified_terms_are_listed(tmp_path):
    layout = write_tree(tmp_path / "out")
    layout.remember_terms(["chef"])
    result = run_analyze(tmp_path / "out", AnalyzeOptions(census=write_census(tmp_path / "census.csv")))
    assert result.not_classified == ["chef"]
    assert "chef" not in result.summary["term"].tolist()


def test_biggest_face_wins_ties_by_order():
    faces = pd.DataFrame(
        {"image": ["a", "a", "b"], "left": [0, 0, 0], "top": [0, 0, 0], "right": [10, 10, 5], "bottom": [10, 10, 5],
         "p_female": [0.9, 0.1, 0.3]}
    )
    assert biggest_faces(faces)["p_female"].tolist() == [0.9, 0.3]


def test_missing_census_is_one_line(tmp_path):
    write_tree(tmp_path / "out")
    with pytest.raises(MissingInputError, match=r"census file .*absent\.csv not found: pass --census") as error:
        run_analyze(tmp_path / "out", AnalyzeOptions(census=tmp_path / "absent.csv"))
    assert "\n" not in str(error.value)


def test_census_with_wrong_columns(tmp_path):
    write_tree(tmp_path / "out")
    (tmp_path / "census.csv").write_text("occupation,pct_women\nNurses,87.9\n", encoding="utf-8")
    with pytest.raises(MissingInputError, match="lacks columns term, bls_occupation"):
        run_analyze(tmp_path / "out", AnalyzeOptions(census=tmp_path / "census.csv"))


def test_census_in_percent_is_refused(tmp_path):
    write_tree(tmp_path / "out")
    with pytest.raises(GimgError, match="fractions"):
        run_analyze(tmp_path / "out", AnalyzeOptions(census=write_census(tmp_path / "census.csv", {"nurse": 87.9})))


def test_nothing_classified(tmp_path):
    Layout(tmp_path / "out").remember_terms(["nurse"])
    with pytest.raises(MissingInputError, match="run `gimg classify` first"):
        run_analyze(tmp_path / "out", AnalyzeOptions(census=write_census(tmp_path / "census.csv")))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"cutoff": 50}, "cutoff"), ({"policy": "largest"}, "biggest, all, single"), ({"min_box": -1}, "at least 0"),
     ({"resamples": 10}, "resamples")],
)
def test_bad_options(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        run_analyze(tmp_path, AnalyzeOptions(census=write_census(tmp_path / "census.csv"), **options))


def test_the_shipped_census_is_the_default_and_joins_by_term(tmp_path):
    write_tree(tmp_path / "out")
    result = run_analyze(tmp_path / "out")
    assert result.census == "professions.csv (BLS CPS 2022, shipped with gimg)"
    summary = result.summary.set_index("term")
    assert summary.loc["nurse", "census_share_women"] == 0.879
    assert summary.loc["plumber", "census_share_women"] == 0.011
    assert set(result.without_census) == {"astronaut", "ghost writer"}
