"""`gimg pipeline` end to end through the CLI, against the local engine on 127.0.0.1, with real faces."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from gimg.cli import main
from gimg.layout import Layout
from gimg.localengine import build_site, read_face_labels, serve_site

REPO = Path(__file__).resolve().parents[1]
CENSUS = REPO / "src" / "gimg" / "data" / "professions.csv"
SHARES = {"nurse": 0.8, "software developer": 0.2, "cashier": 0.6}
PER_TERM = 10


def run_gimg(monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["gimg", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code or 0


@pytest.fixture(scope="module")
def study(tmp_path_factory, fixtures):
    """One pipeline run over three terms with known shares of women, plus a rerun."""
    root = tmp_path_factory.mktemp("study")
    site = root / "site"
    faces = fixtures / "faces"
    truth = build_site(read_face_labels(faces), faces / "images", site, SHARES, per_term=PER_TERM, seed=3)
    terms = root / "terms.txt"
    terms.write_text("# three terms\n" + "\n".join(SHARES) + "\n")
    out = root / "out"
    monkeypatch = pytest.MonkeyPatch()
    with serve_site(site) as base_url:
        args = ["pipeline", terms, "--out", out, "--engine-url", base_url, "--limit", PER_TERM,
                "--workers", 2, "--landmarks"]
        first = run_gimg(monkeypatch, *args)
        stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*.csv")}
        second = run_gimg(monkeypatch, *args)
    monkeypatch.undo()
    return {"out": out, "truth": truth, "codes": (first, second), "stamps": stamps}


def test_pipeline_exits_zero_and_rerun_redoes_nothing(study):
    """Analysis is recomputed on every run (it only reads CSVs); no other stage may redo work."""
    assert study["codes"] == (0, 0)
    for path, stamp in study["stamps"].items():
        if path.name != "terms.csv" and "analysis" not in path.parts:
            assert path.stat().st_mtime_ns == stamp, f"{path} was rewritten by the rerun"


def test_every_stage_wrote_its_files(study):
    layout = Layout(study["out"])
    for term in SHARES:
        manifest = pd.read_csv(layout.manifest(term))
        assert list(manifest.columns) == ["rank", "url", "source_page", "engine", "time", "sha256", "status",
                                          "error", "file", "run"]
        [context] = (study["out"] / "context").glob("*.json")
        assert set(manifest.run) == {context.stem}, "every row names the run whose context record says what was asked"
        assert (manifest.status == "downloaded").sum() == PER_TERM
        assert all((layout.downloaded(term) / name).is_file() for name in manifest.file)
        faces = pd.read_csv(layout.faces(term))
        assert all((layout.cropped(term) / name).is_file() for name in faces.file)
        landmarks = (layout.cropped(term) / faces.file[0]).with_suffix(".txt").read_text().split("\n")
        assert len([line for line in landmarks if line]) == 68
        dataset = pd.read_csv(layout.dataset(term))
        assert {"file", "p_female", "height", "width", "image", "left", "top", "right", "bottom"} <= set(dataset)
        assert dataset.p_female.between(0, 1).all()
    analysis = layout.analysis
    assert (analysis / "scatter.png").stat().st_size > 10_000
    assert "data:image/png;base64" in (analysis / "report.html").read_text()


def test_shares_match_the_known_labels(study):
    """Join every classified face back to its labelled source: each share must equal the truth, give or take
    exactly the faces the classifier got wrong or the detector missed."""
    layout = Layout(study["out"])
    truth = study["truth"].rename(columns={"image": "served"})
    summary = pd.read_csv(layout.analysis / "summary.csv").set_index("term")
    census = pd.read_csv(CENSUS).set_index("term").bls_share_women
    correct = total = 0
    for term, share in SHARES.items():
        manifest = pd.read_csv(layout.manifest(term))
        served = pd.DataFrame({"image": manifest.file, "served": manifest.url.map(lambda url: unquote(url.rsplit("/")[-1]))})
        faces = pd.read_csv(layout.dataset(term)).merge(served, on="image")
        faces = faces.merge(truth[truth.term == term], on="served", validate="many_to_one")
        faces["area"] = (faces.right - faces.left) * (faces.bottom - faces.top)
        biggest = faces.sort_values("area").groupby("served").tail(1)
        said_female = biggest.p_female >= 0.5
        is_female = biggest.gender == "female"
        wrong = int((said_female != is_female).sum())
        missed = PER_TERM - len(biggest)
        correct += len(biggest) - wrong
        total += len(biggest)
        row = summary.loc[term]
        assert row.images == PER_TERM
        assert row.images_with_face == len(biggest) >= PER_TERM - 1
        assert row.women == int(said_female.sum())
        assert row.share_women == pytest.approx(said_female.mean())
        assert abs(row.share_women - share) <= 0.2 + 1e-9, f"{term}: more than two of ten faces misread or missed"
        assert row.census_share_women == pytest.approx(census[term])
    assert correct / total >= 0.85, f"{correct} of {total} faces classified correctly"


def test_the_terms_index_maps_folders_back_to_terms(study):
    with (study["out"] / "terms.csv").open() as handle:
        assert [row["term"] for row in csv.DictReader(handle)] == list(SHARES)


def test_changed_settings_redo_the_work_and_same_settings_skip_it(study, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    shutil.copytree(study["out"], out)
    capsys.readouterr()
    assert run_gimg(monkeypatch, "crop", "--out", out, "--detector", "hog", "--workers", 1) == 0
    assert f"crop: {len(SHARES)} done, 0 already done" in capsys.readouterr().out
    assert run_gimg(monkeypatch, "crop", "--out", out, "--detector", "hog", "--workers", 1) == 0
    assert f"crop: 0 done, {len(SHARES)} already done" in capsys.readouterr().out
    assert run_gimg(monkeypatch, "classify", "--out", out, "--workers", 1) == 0
    assert f"classify: {len(SHARES)} done, 0 already done" in capsys.readouterr().out
