"""The options model through the CLI: study files, GIMG_* variables, flags, run records, loud empty terms, -v/-q."""

from __future__ import annotations

import socket
import tomllib
from dataclasses import fields

import pandas as pd
import pytest
from faultserver import encode, ok, photo, serve, status_then

from gimg.cli import cli
from gimg.layout import Layout
from gimg.options import SECTIONS, AnalyzeOptions, CropOptions, StudyConfig, flag
from gimg.studyfile import read_study

IMAGES = {f"/{number}.jpg": ok(encode(photo(number), "JPEG")) for number in range(6)}


@pytest.fixture
def images():
    with serve(IMAGES) as server:
        yield server


def study_folder(tmp_path, server, study: str) -> tuple:
    """A terms file, a urls CSV of 6 images for "nurse", and study.toml, all in tmp_path."""
    (tmp_path / "terms.txt").write_text("nurse\n")
    (tmp_path / "urls.csv").write_text("term,url\n" + "".join(f"nurse,{server.link(path)}\n" for path in IMAGES))
    (tmp_path / "study.toml").write_text(study)
    return tmp_path / "terms.txt", tmp_path / "study.toml"


def downloaded(out) -> int:
    return len(pd.read_csv(Layout(out).manifest("nurse")))


def test_every_option_has_help_a_flag_and_one_name_in_all_sections():
    names = [item.name for section in SECTIONS.values() for item in fields(section)]
    assert len(names) == len(set(names)), "a flat name must say which option it is"
    for section in SECTIONS.values():
        for item in fields(section):
            assert item.metadata["help"] and flag(item).startswith("--")
    assert {option.name for option in cli.commands["pipeline"].params} >= set(names)


def test_study_file_then_environment_then_flags(gimg, tmp_path, images, monkeypatch):
    terms, study = study_folder(tmp_path, images, '[download]\nengine = "urls"\nurls = "urls.csv"\nlimit = 2\n')
    assert gimg("download", terms, "--config", study, "--out", tmp_path / "a")[0] == 0
    monkeypatch.setenv("GIMG_LIMIT", "3")
    assert gimg("download", terms, "--config", study, "--out", tmp_path / "b")[0] == 0
    assert gimg("download", terms, "--config", study, "--out", tmp_path / "c", "--limit", "4")[0] == 0
    assert [downloaded(tmp_path / name) for name in "abc"] == [2, 3, 4]


def test_terms_and_out_can_come_from_the_study_file(gimg, tmp_path, images):
    _, study = study_folder(tmp_path, images, 'terms = "terms.txt"\nout = "study1"\n'
                                              '[download]\nengine = "urls"\nurls = "urls.csv"\nlimit = 1\n')
    assert gimg("download", "--config", study)[0] == 0
    assert downloaded(tmp_path / "study1") == 1


def test_every_run_leaves_a_record_that_reruns_it(gimg, tmp_path, images):
    terms, study = study_folder(tmp_path, images, '[download]\nengine = "urls"\nurls = "urls.csv"\n')
    assert gimg("download", terms, "--config", study, "--out", tmp_path / "first", "--limit", "5")[0] == 0
    [record] = (tmp_path / "first" / "runs").glob("*-download.toml")
    document = tomllib.loads(record.read_text())
    assert document["run"]["gimg_version"] and document["run"]["command"] == "download"
    assert document["download"]["limit"] == 5 and document["download"]["urls"] == str(tmp_path / "urls.csv")
    assert len(document["run"]["terms_sha256"]) == 64
    again = tmp_path / "again"
    assert gimg("download", "--config", record, "--out", again)[0] == 0
    first = pd.read_csv(Layout(tmp_path / "first").manifest("nurse"))
    second = pd.read_csv(Layout(again).manifest("nurse"))
    assert first[["rank", "url", "sha256", "status"]].equals(second[["rank", "url", "sha256", "status"]])


def test_a_record_holds_every_option_of_its_sections(tmp_path):
    from gimg.studyfile import record_run

    config = StudyConfig(crop=CropOptions(detector="hog", min_face=40), analyze=AnalyzeOptions(census=tmp_path))
    record = record_run(tmp_path / "out", "pipeline", vars(config))
    values = read_study(record)
    assert StudyConfig.from_flat(values) == config


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ("[crop]\ndetector = \"haar\"\n", "[crop] unknown face detector 'haar': choose one of blazeface"),
        ("[download]\nlimit = 0\n", "[download] --limit must be at least 1 (got 0)"),
        ("[download]\nlimits = 5\n", "unknown option 'limits' in [download]"),
        ("[downloads]\nlimit = 5\n", "unknown entry 'downloads'"),
        ("[download\nlimit = 5\n", "is not valid TOML"),
    ],
)
def test_a_bad_study_file_is_one_line_and_exit_2(gimg, tmp_path, study, message):
    (tmp_path / "study.toml").write_text(study)
    code, out, err = gimg("crop", "--config", tmp_path / "study.toml", "--out", tmp_path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_bad_environment_value_is_one_line_and_exit_2(gimg, tmp_path, monkeypatch):
    monkeypatch.setenv("GIMG_DETECTOR", "haar")
    code, _, err = gimg("crop", "--out", tmp_path)
    assert code == 2 and "'haar' is not one of 'blazeface', 'yunet', 'hog', 'cnn'" in err


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_term_with_nothing_downloaded_fails_loudly(gimg, tmp_path, images):
    port = closed_port()
    (tmp_path / "terms.txt").write_text("nurse\njudge\n")
    (tmp_path / "urls.csv").write_text(
        "term,url\n" + "".join(f"judge,http://127.0.0.1:{port}/{number}.jpg\n" for number in range(5))
        + f"nurse,{images.link('/1.jpg')}\n"
    )
    code, out, err = gimg("download", tmp_path / "terms.txt", "--engine", "urls", "--urls", tmp_path / "urls.csv",
                          "--out", tmp_path / "out")
    assert code == 1
    assert "download: judge: failed: nothing downloaded: 5 of 5 failed: connection error: Connection refused" in err
    assert "download: nurse: done" in out
    layout = Layout(tmp_path / "out")
    assert not layout.manifest("judge").exists() and not layout.journal("judge").exists()
    assert layout.terms_with("manifest") == ["nurse"]


def test_a_pipeline_with_nothing_downloaded_stops_after_download(gimg, tmp_path):
    (tmp_path / "terms.txt").write_text("judge\n")
    (tmp_path / "urls.csv").write_text(f"term,url\njudge,http://127.0.0.1:{closed_port()}/1.jpg\n")
    code, out, err = gimg("pipeline", tmp_path / "terms.txt", "--engine", "urls", "--urls", tmp_path / "urls.csv",
                          "--out", tmp_path / "out")
    assert code == 1 and "nothing downloaded" in err and "crop:" not in out and "analyze:" not in out


def test_a_term_below_the_success_share_is_warned_about_and_flagged(gimg, tmp_path, images):
    (tmp_path / "terms.txt").write_text("nurse\n")
    urls = [images.link("/1.jpg")] + [images.link(f"/missing{number}.jpg") for number in range(3)]
    (tmp_path / "urls.csv").write_text("term,url\n" + "".join(f"nurse,{url}\n" for url in urls))
    code, out, err = gimg("download", tmp_path / "terms.txt", "--engine", "urls", "--urls", tmp_path / "urls.csv",
                          "--out", tmp_path / "out")
    assert code == 0
    assert "warning: download: nurse: only 25% of 4 results downloaded (below --min-success 0.5)" in err
    assert "most common problem: 3 of 4 failed: HTTP 404" in err
    summary = pd.read_csv(Layout(tmp_path / "out").download_summary).set_index("term")
    assert summary.loc["nurse", ["results", "downloaded", "failed", "low_yield"]].tolist() == [4, 1, 3, True]


def test_quiet_prints_only_errors_and_verbose_shows_retries_and_skips(gimg, tmp_path):
    routes = {"/flaky.jpg": status_then(500, encode(photo(1), "JPEG")), **IMAGES}
    with serve(routes) as server:
        (tmp_path / "terms.txt").write_text("nurse\n")
        (tmp_path / "urls.csv").write_text(f"term,url\nnurse,{server.link('/flaky.jpg')}\n")
        args = ("download", tmp_path / "terms.txt", "--engine", "urls", "--urls", tmp_path / "urls.csv")
        code, out, err = gimg("-v", *args, "--out", tmp_path / "verbose")
        assert code == 0 and "retrying" in out and "HTTP 500" in out
        code, out, err = gimg("-v", *args, "--out", tmp_path / "verbose")
        assert "download: nurse: skipped: manifest.csv exists" in out
        code, out, err = gimg("-q", *args, "--out", tmp_path / "quiet")
        assert (code, out, err) == (0, "", "")
