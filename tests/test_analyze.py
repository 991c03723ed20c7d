"""gimg.analyze on an output tree with known answers: shares, counts, correlations, plot and report."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from gimg.analyze import SUMMARY_COLUMNS, biggest_faces, run_analyze
from gimg.errors import GimgError, MissingInputError
from gimg.layout import Layout, write_csv

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


@pytest.fixture
def analysed(tmp_path):
    write_tree(tmp_path / "out")
    return run_analyze(tmp_path / "out", census=write_census(tmp_path / "census.csv"))


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


def test_correlations_match_scipy(analysed):
    census, search = [0.9, 0.02, 0.2], [2 / 3, 1 / 3, 1 / 2]
    pearson, spearman = stats.pearsonr(census, search), stats.spearmanr(census, search)
    assert analysed.n_terms == 3
    assert analysed.pearson_r == pytest.approx(pearson.statistic)
    assert analysed.pearson_p == pytest.approx(pearson.pvalue)
    assert analysed.spearman_rho == pytest.approx(spearman.statistic)
    assert analysed.spearman_p == pytest.approx(spearman.pvalue)
    assert analysed.correlation_note == ""


def test_summary_csv_round_trips(analysed):
    written = pd.read_csv(analysed.summary_csv)
    assert list(written.columns) == SUMMARY_COLUMNS
    pd.testing.assert_frame_equal(written, analysed.summary, check_dtype=False)


def test_scatter_is_a_png(analysed):
    with Image.open(analysed.scatter_png) as image:
        assert image.format == "PNG"
        assert image.width >= 600 and image.height >= 600


def test_report_is_self_contained(analysed):
    html = analysed.report_html.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html
    for text in ("biggest face", "0.5", "onnx", "astronaut", "ghost writer", "gimg 0.", "UTC"):
        assert text in html
    rows = re.findall(r"<tr><td>([^<]+)</td>", html)
    assert rows == ["nurse", "software developer", "plumber", "astronaut", "ghost writer"]  # by difference


def test_cutoff_is_respected(tmp_path):
    write_tree(tmp_path / "out")
    result = run_analyze(tmp_path / "out", census=write_census(tmp_path / "census.csv"), cutoff=0.6)
    summary = result.summary.set_index("term")
    assert summary.loc["nurse", "women"] == 1
    assert summary.loc["plumber", "women"] == 1
    assert summary.loc["software developer", "women"] == 1


def test_one_term_reports_why_there_is_no_correlation(tmp_path):
    write_tree(tmp_path / "out", {"nurse": TREE["nurse"]})
    result = run_analyze(tmp_path / "out", census=write_census(tmp_path / "census.csv"))
    assert result.summary["share_women"].tolist() == [2 / 3]
    assert math.isnan(result.pearson_r) and math.isnan(result.spearman_rho)
    assert "at least 3" in result.correlation_note
    assert "at least 3" in result.report_html.read_text(encoding="utf-8")


def test_terms_without_faces_only(tmp_path):
    write_tree(tmp_path / "out", {"ghost writer": TREE["ghost writer"], "nurse": [("downloaded", [])]})
    result = run_analyze(tmp_path / "out", census=write_census(tmp_path / "census.csv"))
    assert result.summary["images_with_face"].tolist() == [0, 0]
    assert result.summary["share_women"].isna().all()
    assert result.report_html.exists() and result.scatter_png.exists()


def test_unclassified_terms_are_listed(tmp_path):
    layout = write_tree(tmp_path / "out")
    layout.remember_terms(["chef"])
    result = run_analyze(tmp_path / "out", census=write_census(tmp_path / "census.csv"))
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
        run_analyze(tmp_path / "out", census=tmp_path / "absent.csv")
    assert "\n" not in str(error.value)


def test_census_with_wrong_columns(tmp_path):
    write_tree(tmp_path / "out")
    (tmp_path / "census.csv").write_text("occupation,pct_women\nNurses,87.9\n", encoding="utf-8")
    with pytest.raises(MissingInputError, match="lacks columns term, bls_occupation"):
        run_analyze(tmp_path / "out", census=tmp_path / "census.csv")


def test_census_in_percent_is_refused(tmp_path):
    write_tree(tmp_path / "out")
    with pytest.raises(GimgError, match="fractions"):
        run_analyze(tmp_path / "out", census=write_census(tmp_path / "census.csv", {"nurse": 87.9}))


def test_nothing_classified(tmp_path):
    Layout(tmp_path / "out").remember_terms(["nurse"])
    with pytest.raises(MissingInputError, match="run `gimg classify` first"):
        run_analyze(tmp_path / "out", census=write_census(tmp_path / "census.csv"))


def test_bad_cutoff(tmp_path):
    with pytest.raises(ValueError, match="cutoff"):
        run_analyze(tmp_path, census=write_census(tmp_path / "census.csv"), cutoff=50)


def test_repository_census_joins_by_term(tmp_path):
    write_tree(tmp_path / "out")
    result = run_analyze(tmp_path / "out", census=Path(__file__).resolve().parents[1] / "professions.csv")
    summary = result.summary.set_index("term")
    assert summary.loc["nurse", "census_share_women"] == 0.879
    assert summary.loc["plumber", "census_share_women"] == 0.011
    assert set(result.without_census) == {"astronaut", "ghost writer"}
