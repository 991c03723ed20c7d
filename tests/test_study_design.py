"""A study of two engines x two markets x two waves through the CLI, against one local engine on 127.0.0.1 that
answers as Bing and as DuckDuckGo, per market, and switches to a second wave's results: the study index, the
context records, the parameters the server saw, the comparison's tables against the truth the sites were built
from, the rank tables, resuming (a rerun, and a wave killed with SIGKILL), and the reports in headless Chromium."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
from browser import CHROMEDRIVER, figure_drew, headless_chromium
from conftest import run_cli

from gimg.design import read_design
from gimg.engines.record import ContextRecord
from gimg.layout import Layout, write_csv
from gimg.localengine import build_branch_site, local_engine, read_face_labels

PER_TERM = 12
TERMS = ["nurse", "pilot"]
SOURCES = [("bing", "en-US"), ("bing", "en-GB"), ("duckduckgo", "en-US"), ("duckduckgo", "en-GB")]
WAVE1 = {
    ("bing", "en-US"): {"nurse": 0.9, "pilot": 0.1},
    ("bing", "en-GB"): {"nurse": 0.75, "pilot": 0.25},
    ("duckduckgo", "en-US"): {"nurse": 0.25, "pilot": 0.1},
    ("duckduckgo", "en-GB"): {"nurse": 0.9, "pilot": 0.25},
}
CHANGED = ("bing", "en-US", "pilot")  # wave 2 serves new images for it, 90% women; everything else as in wave 1
REGIONS = {"en-US": ("us-en", "US"), "en-GB": ("uk-en", "GB")}
STUDY = """\
[download]
engine = ["bing", "duckduckgo"]
market = "en-US,en-GB"
safe_search = "off"
limit = 12

[analyze]
min_faces = 5
resamples = 300

[execution]
workers = 2
"""


def build_sites(root: Path, fixtures: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wave 1's site, and wave 2's: the same images but for CHANGED, which gets new ones under new names."""
    faces = fixtures / "faces"
    labels = read_face_labels(faces)
    first = build_branch_site(labels, faces / "images", root / "site1", WAVE1, per_term=PER_TERM, seed=1)
    shutil.copytree(root / "site1", root / "site2")
    engine, market, term = CHANGED
    new = build_branch_site(labels, faces / "images", root / "extra", {(engine, market): {term: 0.9}},
                            per_term=PER_TERM, seed=2, prefix="w2_")
    for image in new["image"]:
        shutil.copy(root / "extra" / "img" / image, root / "site2" / "img" / image)
    kept = first[~((first.engine == engine) & (first.market == market) & (first.term == term))]
    second = pd.concat([kept, new], ignore_index=True)
    write_csv(root / "site2" / "index.csv", second.to_dict("records"), list(second.columns))
    return first, second


def stamps(folder: Path, pattern: str = "*") -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in folder.rglob(pattern) if path.is_file()}


def kept_work(out: Path) -> dict[Path, int]:
    """The mtimes of every stage output that a rerun must not redo (analysis and comparison are redone)."""
    return {path: stamp for path, stamp in stamps(out).items()
            if not {"analysis", "comparison", "runs"} & set(path.relative_to(out).parts)
            and path.name not in ("terms.csv", "study.json")}


@pytest.fixture(scope="module")
def study(tmp_path_factory, fixtures):
    root = tmp_path_factory.mktemp("design")
    truth1, truth2 = build_sites(root, fixtures)
    terms = root / "terms.txt"
    terms.write_text("\n".join(TERMS) + "\n")
    (root / "study.toml").write_text(STUDY)
    out = root / "out"
    monkeypatch = pytest.MonkeyPatch()

    def gimg(*args) -> int:
        return run_cli(monkeypatch, *args)

    found = {"root": root, "out": out, "truth": {"w1": truth1, "w2": truth2}, "terms": terms}
    with local_engine(root / "site1") as engine:
        args = ["pipeline", terms, "--config", root / "study.toml", "--out", out, "--engine-url", engine.url]
        found["first"] = gimg(*args, "--wave", "w1")
        found["requests_w1"] = list(engine.requests)
        before = kept_work(out)
        contexts = len(list(out.rglob("context/*.json")))
        found["rerun"] = gimg(*args)  # no --wave: resumes the study's first wave
        found["rerun_redid"] = [path for path, stamp in kept_work(out).items() if before.get(path) != stamp]
        found["rerun_new_contexts"] = len(list(out.rglob("context/*.json"))) - contexts
        wave1 = kept_work(out / "w1")

        engine.switch(root / "site2")
        command = [sys.executable, "-m", "gimg", "-q", *map(str, args), "--wave", "w2"]
        killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 120
        while len(list((out / "w2").glob("*/Downloaded_images/*/manifest.csv"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        found["at_kill"] = stamps(out / "w2", "manifest.csv")
        found["second"] = gimg(*args, "--wave", "w2")
        found["requests"] = list(engine.requests)
    monkeypatch.undo()
    found["wave1_after"] = kept_work(out / "w1")
    found["wave1_before"] = wave1
    return found


def branches(out: Path) -> dict[tuple[str, str, str], Path]:
    return {(b.wave, b.engine, b.market): b.path(out) for b in read_design(out).branches}


def served(manifest: pd.DataFrame) -> pd.Series:
    """The site's image name behind each downloaded file."""
    return manifest.url.map(lambda url: unquote(url.rsplit("/", 1)[-1]))


def test_runs_exit_zero_and_the_index_holds_every_branch(study):
    assert (study["first"], study["rerun"], study["second"]) == (0, 0, 0)
    design = read_design(study["out"])
    assert [wave.name for wave in design.waves] == ["w1", "w2"]
    assert [(b.wave, b.engine, b.market, b.folder) for b in design.branches] == [
        (wave, engine, market, f"{wave}/{engine}_{market}") for wave in ("w1", "w2") for engine, market in SOURCES
    ]
    for folder in branches(study["out"]).values():
        assert {path.name for path in (folder / "analysis").iterdir()} >= {
            "summary.csv", "ranks.csv", "rank_bands.csv", "analysis.json", "report.html", "rank_bands.png"}


def test_a_rerun_does_no_finished_work_and_an_earlier_wave_is_kept(study):
    assert study["rerun_redid"] == [] and study["rerun_new_contexts"] == 0
    assert study["wave1_after"] == study["wave1_before"], "wave 2 rewrote files of wave 1"


def test_a_killed_wave_resumes_without_redoing_what_it_finished(study):
    at_kill = study["at_kill"]
    assert at_kill, "the kill came before any manifest of wave 2"
    for path, stamp in at_kill.items():
        assert path.stat().st_mtime_ns == stamp, f"{path} was written again after the kill"
    assert len(list((study["out"] / "w2").glob("*/Downloaded_images/*/manifest.csv"))) == len(SOURCES) * len(TERMS)


def test_context_records_say_what_each_branch_asked(study):
    sha = hashlib.sha256(study["terms"].read_bytes()).hexdigest()
    for wave in ("w1", "w2"):
        runs = set()
        for (engine, market) in SOURCES:
            folder = branches(study["out"])[(wave, engine, market)]
            records = sorted((folder / "context").glob("*.json"))
            assert records, folder
            for path in records:
                record = ContextRecord.from_json(path.read_text())
                assert (record.engine, record.context.market, record.context.safe_search) == (engine, market, "off")
                assert record.run == path.stem and record.terms_sha256 == sha and record.gimg_version
                assert record.user_agent.startswith("gimg/") and record.started <= record.finished
                assert record.requests and all(r.url.startswith("http://127.0.0.1:") for r in record.requests)
            for term in TERMS:
                manifest = pd.read_csv(Layout(folder).manifest(term), dtype=str)
                assert manifest.run.nunique() == 1 and (folder / "context" / f"{manifest.run[0]}.json").is_file()
                runs.add(manifest.run[0])
        if wave == "w1":
            assert len(runs) == 1, "the branches of one run share its id"


def test_the_servers_saw_each_engines_market_and_safe_search(study):
    for requests in (study["requests_w1"], study["requests"]):
        bing = [query for path, query, _ in requests if path == "/images/async"]
        token = [query for path, query, _ in requests if path == "/"]
        images = [query for path, query, _ in requests if path == "/i.js"]
        for market, (region, country) in REGIONS.items():
            asked = [q for q in bing if q.get("mkt") == market]
            assert {q["q"] for q in asked} >= set(TERMS)
            assert all((q["cc"], q["setlang"], q["adlt"]) == (country, "en", "off") for q in asked)
            assert {q["q"] for q in token if (q["kl"], q["kp"]) == (region, "-2")} >= set(TERMS)
            assert {q["q"] for q in images if (q["l"], q["ct"], q["p"]) == (region, country, "-2")} >= set(TERMS)
        cookies = [headers.get("Cookie", "") for path, _, headers in requests if path == "/images/async"]
        assert cookies and all("ADLT=OFF" in cookie for cookie in cookies)


def called(folder: Path, term: str, truth: pd.DataFrame) -> pd.DataFrame:
    """Each downloaded image of a term in a branch with its rank, its true gender and the classifier's call on
    its biggest face (images without a face are left out)."""
    layout = Layout(folder)
    manifest = pd.read_csv(layout.manifest(term))
    manifest = manifest.assign(served=served(manifest))
    faces = pd.read_csv(layout.dataset(term)).merge(manifest[["file", "rank", "served"]], left_on="image",
                                                     right_on="file")
    faces = faces.merge(truth.rename(columns={"image": "served", "rank": "true_rank"}), on="served",
                        validate="many_to_one")
    faces["area"] = (faces.right - faces.left) * (faces.bottom - faces.top)
    biggest = faces.sort_values("area").groupby("served").tail(1)
    return biggest.assign(woman=biggest.p_female >= 0.5).sort_values("rank")


def truth_share(wave: str, engine: str, market: str, term: str) -> float:
    """The share of women among the images a branch's site served for term (as many women as build_site drew)."""
    share = 0.9 if wave == "w2" and (engine, market, term) == CHANGED else WAVE1[(engine, market)][term]
    return round(share * PER_TERM) / PER_TERM


def test_side_by_side_matches_the_sites_truth(study):
    out = study["out"]
    side = pd.read_csv(Layout(out).side_by_side_csv, keep_default_na=False, na_values=[""])
    assert len(side) == 2 * len(SOURCES) * len(TERMS)
    for row in side.itertuples():
        images = called(out / row.branch, row.term, study["truth"][row.wave])
        assert (images.served.str.contains(f"{row.engine}_{row.market}_")).all(), "another branch's results"
        assert row.images == PER_TERM and row.faces == len(images) >= PER_TERM - 1
        assert row.share_women == pytest.approx(images.woman.mean())
        wrong = int((images.woman != (images.gender == "female")).sum()) + PER_TERM - len(images)
        assert abs(row.share_women - truth_share(row.wave, row.engine, row.market, row.term)) <= wrong / len(images) + 1e-9


def test_engine_differences_and_drift_against_the_truth(study):
    layout = Layout(study["out"])
    side = pd.read_csv(layout.side_by_side_csv).set_index(["branch", "term"])
    differences = pd.read_csv(layout.differences_csv).set_index(["a", "b", "term"])
    drift = pd.read_csv(layout.drift_csv).set_index(["a", "b", "term"])
    assert len(differences) == 2 * 4 * (len(TERMS) + 1)  # per wave: 2 engine and 2 market pairs, each term + all
    for (a, b, term), row in pd.concat([differences, drift]).iterrows():
        if term == "(all terms)":
            continue
        expected = side.loc[(b, term), "corrected_share"] - side.loc[(a, term), "corrected_share"]
        assert row.difference == pytest.approx(expected) and row.low <= row.difference <= row.high
        wave_a, source_a = a.split("/")
        wave_b, source_b = b.split("/")
        true = (truth_share(wave_b, *source_b.split("_"), term) - truth_share(wave_a, *source_a.split("_"), term))
        assert abs(row.difference - true) <= 0.25, (a, b, term)
        if abs(true) >= 0.6:
            assert row.excludes_zero, (a, b, term)
    engine, market, term = CHANGED
    for (a, b, drifted), row in drift.iterrows():
        changed = a == f"w1/{engine}_{market}" and drifted == term
        if drifted != "(all terms)":
            assert bool(row.excludes_zero) == changed, (a, drifted)
            assert changed or row.difference == 0.0  # the same images, so the same share
    assert len(drift) == len(SOURCES) * (len(TERMS) + 1)


def test_overlap_of_result_urls(study):
    overlap = pd.read_csv(Layout(study["out"]).overlap_csv)
    waves = overlap[overlap.kind == "wave"].set_index(["a", "term"])
    engine, market, term = CHANGED
    for (a, drifted), row in waves.iterrows():
        expected = 0.0 if (a, drifted) == (f"w1/{engine}_{market}", term) else 1.0
        assert row.jaccard == expected and row.results_a == row.results_b == PER_TERM
    assert (overlap[overlap.kind != "wave"].jaccard == 0).all(), "engines and markets were served different images"


def test_rank_tables_follow_the_served_order(study):
    out = study["out"]
    for (wave, engine, market), folder in branches(out).items():
        layout = Layout(folder)
        ranks = pd.read_csv(layout.ranks_csv).set_index("term")
        counted = []
        for term in TERMS:
            images = called(folder, term, study["truth"][wave])
            assert (images["rank"] == images["true_rank"]).all(), "ranks differ from the order served"
            women = images[images.woman]
            row = ranks.loc[term]
            assert row.images == len(images) and row.women == len(women)
            if len(women):
                assert row.first_woman_rank == women["rank"].min()
            else:
                assert pd.isna(row.first_woman_rank)
            if len(women) and len(women) < len(images):
                assert row.women_mean_rank == pytest.approx(women["rank"].mean())
            counted.append(images)
        pooled = pd.concat(counted)
        bands = pd.read_csv(layout.rank_bands_csv).set_index("band")
        assert list(bands.index) == ["1-10", "11-20"]
        for band, inside in (("1-10", pooled["rank"] <= 10), ("11-20", pooled["rank"] > 10)):
            assert bands.loc[band, "images"] == inside.sum()
            assert bands.loc[band, "share_women"] == pytest.approx(pooled.woman[inside].mean())
            assert bands.loc[band, "corrected_low"] <= bands.loc[band, "corrected_share"] <= bands.loc[band, "corrected_high"]
        analysis = json.loads(layout.analysis_json.read_text())
        assert analysis["rank_bands_corrected"] is True
        assert analysis["rank_test"]["permutations"] == 9999 and 0 < analysis["rank_test"]["permutation_p"] <= 1


@pytest.mark.skipif(not CHROMEDRIVER.exists(), reason="needs Debian chromium and chromium-driver")
def test_the_study_and_branch_reports_draw_their_figures_in_chromium(study, tmp_path):
    from selenium.webdriver.common.by import By

    out = study["out"]
    with headless_chromium(tmp_path / "profile") as driver:
        driver.get(Layout(out).comparison_report.resolve().as_uri())
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "Drift between waves" in text and "w1/bing_en-US" in text and "changed" in text
        for alt in ("Share of women per term in each branch", "Change in the share of women per term",
                    "Share of women by rank band in each branch"):
            figure_drew(driver, driver.find_element(By.CSS_SELECTOR, f'img[alt^="{alt}"]'))
        driver.save_screenshot(str(tmp_path / "study.png"))
        driver.find_element(By.LINK_TEXT, "w2/duckduckgo_en-GB").click()
        assert driver.current_url.endswith("w2/duckduckgo_en-GB/analysis/report.html")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "Where women appear in the ranking" in text and "van Elteren" in text
        assert "Stereotype exaggeration (Kay et al. 2015)" in text
        figure_drew(driver, driver.find_element(By.CSS_SELECTOR, 'img[alt^="Share of women by rank band"]'))
        figure_drew(driver, driver.find_element(By.CSS_SELECTOR, 'img[alt^="Scatter plot"]'))
        driver.save_screenshot(str(tmp_path / "branch.png"))
