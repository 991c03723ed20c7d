"""Study designs: options with several values, the study index, which branch lives where, and which a run covers."""

from __future__ import annotations

import pytest

from gimg.design import ROOT, Branch, plan_run, read_design, study_branches, write_design
from gimg.errors import GimgError
from gimg.options import DownloadOptions, OptionError, values_of
from gimg.studyfile import read_study

STARTED = "2026-11-24T10:00:00.000Z"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("bing", "bing"), ("bing, duckduckgo", "bing,duckduckgo"), (["duckduckgo", "bing", "duckduckgo"], "duckduckgo,bing")],
)
def test_engines_take_several_values_each_checked(given, expected):
    assert DownloadOptions(engine=given).engine == expected


def test_markets_are_normalised_and_a_bad_one_is_named():
    assert values_of(DownloadOptions(market="en-us,EN-gb").market) == ["en-US", "en-GB"]
    with pytest.raises(OptionError, match="--market: market 'english' is not language-COUNTRY"):
        DownloadOptions(market="en-US,english")
    with pytest.raises(OptionError, match="unknown engine 'altavista'"):
        DownloadOptions(engine="bing,altavista")
    with pytest.raises(OptionError, match="--wave: 'a b' is not a safe name"):
        DownloadOptions(wave="a b")


def test_a_study_file_takes_a_list_and_the_environment_a_comma_list(gimg, tmp_path, monkeypatch):
    (tmp_path / "study.toml").write_text('[download]\nengine = ["bing", "duckduckgo"]\nmarket = ["en-us"]\n')
    assert read_study(tmp_path / "study.toml") == {"engine": "bing,duckduckgo", "market": "en-US"}
    (tmp_path / "terms.txt").write_text("nurse\n")
    monkeypatch.setenv("GIMG_MARKET", "en-US,xx")
    code, _, err = gimg("download", tmp_path / "terms.txt", "--engine", "bing,duckduckgo", "--out", tmp_path / "o")
    assert code == 2 and "--market: market 'xx' is not language-COUNTRY" in err and len(err.splitlines()) == 1


def test_one_engine_without_a_wave_lives_at_out_itself_as_before(tmp_path):
    plan = plan_run(tmp_path, DownloadOptions(engine="bing"), STARTED)
    assert plan.wave == "2026-11-24"
    assert plan.branches == (Branch("2026-11-24", "bing", None, ROOT),)
    assert plan.branches[0].path(tmp_path) == tmp_path


def test_later_branches_and_waves_go_below_out_and_earlier_ones_stay(tmp_path):
    write_design(tmp_path, plan_run(tmp_path, DownloadOptions(engine="bing"), STARTED).design)
    again = plan_run(tmp_path, DownloadOptions(engine="bing,duckduckgo", market="en-US"), "2026-12-01T00:00:00Z")
    assert again.wave == "2026-11-24", "without --wave a run resumes the study's first wave"
    assert [b.folder for b in again.branches] == ["2026-11-24/bing_en-US", "2026-11-24/duckduckgo_en-US"]
    write_design(tmp_path, again.design)
    second = plan_run(tmp_path, DownloadOptions(engine="bing", wave="w2"), "2026-12-01T00:00:00Z")
    assert [b.folder for b in second.branches] == ["w2/bing"]
    assert [w.name for w in second.design.waves] == ["2026-11-24", "w2"]
    assert [b.folder for b in second.design.branches] == [".", "2026-11-24/bing_en-US", "2026-11-24/duckduckgo_en-US",
                                                          "w2/bing"]
    write_design(tmp_path, second.design)
    assert read_design(tmp_path) == second.design
    resumed = plan_run(tmp_path, DownloadOptions(engine="bing", market="en-US"), "2027-01-01T00:00:00Z")
    assert resumed.branches == (again.branches[0],) and resumed.design == second.design


def test_a_named_wave_of_one_engine_gets_its_own_folder(tmp_path):
    plan = plan_run(tmp_path, DownloadOptions(engine="bing", wave="w1"), STARTED)
    assert [b.folder for b in plan.branches] == ["w1/bing"]


@pytest.mark.parametrize("wave", ["analysis", "Datasets", "comparison", "runs"])
def test_a_wave_may_not_take_a_name_of_the_tree(tmp_path, wave):
    with pytest.raises(GimgError, match="would be a folder of the output tree"):
        plan_run(tmp_path, DownloadOptions(wave=wave), STARTED)


def test_a_tree_without_an_index_is_one_branch_and_a_damaged_index_is_named(tmp_path):
    assert [b.path(tmp_path) for b in study_branches(tmp_path)] == [tmp_path]
    (tmp_path / "study.json").write_text('{"format": "gimg-study/1", "waves": []}')
    with pytest.raises(GimgError, match="study.json is damaged"):
        read_design(tmp_path)


def test_urls_cannot_mix_with_live_engines(tmp_path):
    with pytest.raises(GimgError, match="cannot run with other engines"):
        plan_run(tmp_path, DownloadOptions(engine="urls,bing", urls=tmp_path / "u.csv"), STARTED)
