"""`gimg search` without downloads, its CSV replayed exactly by `--engine urls`, and `--retry-failed`, which fetches
again only the results that failed: all through the CLI against servers on 127.0.0.1."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import run_cli
from faultserver import encode, ok, photo, serve, status_then

from gimg.design import read_design
from gimg.engines.record import ContextRecord
from gimg.layout import Layout
from gimg.localengine import build_branch_site, local_engine, read_face_labels
from gimg.search import SEARCH_COLUMNS

SHARES = {("bing", "en-US"): {"nurse": 0.5, "judge": 0.25}, ("duckduckgo", "en-GB"): {"nurse": 0.75, "judge": 0.5},
          ("bing", "en-GB"): {"nurse": 0.25, "judge": 0.5}, ("duckduckgo", "en-US"): {"nurse": 0.5, "judge": 0.5}}
PER_TERM = 6
SAME = ["rank", "url", "source_page", "engine", "sha256", "status", "file"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, fixtures):
    """A search of two engines in two markets, and the same study downloaded live and replayed from it."""
    root = tmp_path_factory.mktemp("search")
    faces = fixtures / "faces"
    build_branch_site(read_face_labels(faces), faces / "images", root / "site", SHARES, per_term=PER_TERM, seed=4)
    (root / "terms.txt").write_text("nurse\njudge\n")
    monkeypatch = pytest.MonkeyPatch()
    with local_engine(root / "site") as engine:
        context = ["--engine", "bing,duckduckgo", "--market", "en-US,en-GB", "--engine-url", engine.url,
                   "--limit", PER_TERM, "--safe-search", "strict"]
        codes = [run_cli(monkeypatch, "search", root / "terms.txt", *context, "--out", root / "search")]
        downloads = sum(path.startswith("/img/") for path, _, _ in engine.requests)
        [listing] = (root / "search" / "searches").glob("*.csv")
        codes.append(run_cli(monkeypatch, "download", root / "terms.txt", *context, "--out", root / "live"))
        codes.append(run_cli(monkeypatch, "download", root / "terms.txt", "--engine", "urls", "--urls", listing,
                              "--out", root / "replay"))
        codes.append(run_cli(monkeypatch, "download", root / "terms.txt", "--engine", "urls", "--urls", listing,
                              "--market", "en-GB", "--out", root / "british"))
    monkeypatch.undo()
    return {"root": root, "listing": listing, "codes": codes, "image_requests_by_search": downloads}


def test_search_lists_every_engine_and_market_without_downloading(searched):
    assert searched["codes"] == [0, 0, 0, 0]
    assert searched["image_requests_by_search"] == 0
    listing = pd.read_csv(searched["listing"], keep_default_na=False)
    assert list(listing.columns) == SEARCH_COLUMNS
    assert listing.run.nunique() == 1 and searched["listing"].stem == listing.run[0]
    counts = listing.groupby(["engine", "market", "term"]).size()
    assert len(counts) == 8 and (counts == PER_TERM).all()
    for (engine, market), group in listing.groupby(["engine", "market"]):
        assert all(f"/img/{engine}_{market}_" in url for url in group.url)
        record = ContextRecord.from_json((searched["listing"].parent / f"{listing.run[0]}-{engine}_{market}.json")
                                         .read_text())
        assert (record.engine, record.context.market, record.context.safe_search) == (engine, market, "strict")
        assert {request.term for request in record.requests} == {"nurse", "judge"}


def test_replay_makes_the_same_branches_ranks_and_files_as_a_live_download(searched):
    root = searched["root"]
    live, replay = read_design(root / "live"), read_design(root / "replay")
    assert [(b.engine, b.market, b.folder) for b in replay.branches] == \
        [(b.engine, b.market, b.folder) for b in live.branches]
    assert len(replay.branches) == 4
    for branch in replay.branches:
        for term in ("nurse", "judge"):
            first = pd.read_csv(Layout(branch.path(root / "live")).manifest(term), dtype=str)
            second = pd.read_csv(Layout(branch.path(root / "replay")).manifest(term), dtype=str)
            pd.testing.assert_frame_equal(first[SAME], second[SAME])
            assert (first.run != second.run).all()
        [record] = (branch.path(root / "replay") / "context").glob("*.json")
        replayed = ContextRecord.from_json(record.read_text())
        assert replayed.engine == "urls" and str(searched["listing"]) in replayed.source
        assert replayed.requests == ()


def test_replay_of_one_market(searched):
    design = read_design(searched["root"] / "british")
    assert sorted((b.engine, b.market) for b in design.branches) == [("bing", "en-GB"), ("duckduckgo", "en-GB")]


def test_search_refuses_urls(gimg, tmp_path):
    (tmp_path / "terms.txt").write_text("nurse\n")
    code, _, err = gimg("search", tmp_path / "terms.txt", "--engine", "urls", "--out", tmp_path)
    assert code == 2 and "replays a list that exists already" in err


def test_retry_failed_fetches_again_only_the_failed_results(gimg, tmp_path):
    image = encode(photo(7), "JPEG")
    routes = {"/a.jpg": ok(encode(photo(1), "JPEG")), "/b.jpg": status_then(404, image, times=1),
              "/c.jpg": ok(encode(photo(3), "JPEG")), "/d.jpg": status_then(404, image, times=99)}
    with serve(routes) as server:
        (tmp_path / "terms.txt").write_text("nurse\n")
        (tmp_path / "urls.csv").write_text("term,url\n" + "".join(f"nurse,{server.link(p)}\n" for p in routes))
        args = ("download", tmp_path / "terms.txt", "--engine", "urls", "--urls", tmp_path / "urls.csv", "--out",
                tmp_path / "out")
        assert gimg(*args)[0] == 0
        layout = Layout(tmp_path / "out")
        before = pd.read_csv(layout.manifest("nurse"), dtype=str, keep_default_na=False)
        assert before.status.tolist() == ["downloaded", "failed", "downloaded", "failed"]
        kept = {name: (layout.downloaded("nurse") / name).stat().st_mtime_ns for name in before.file if name}
        code, out, _ = gimg(*args, "--retry-failed")
        assert code == 0 and "nurse: done: retried 2 failed: 1 downloaded, 1 still failed" in out
        after = pd.read_csv(layout.manifest("nurse"), dtype=str, keep_default_na=False)
        assert after.status.tolist() == ["downloaded", "downloaded", "downloaded", "failed"]
        assert dict(server.requests) == {"/a.jpg": 1, "/b.jpg": 2, "/c.jpg": 1, "/d.jpg": 2}
        assert {name: (layout.downloaded("nurse") / name).stat().st_mtime_ns for name in kept} == kept
        assert after.run[[0, 2]].tolist() == before.run[[0, 2]].tolist(), "rows not retried keep their run"
        assert after.run[1] != before.run[1] and after.run[1] == after.run[3]
        assert (tmp_path / "out" / "context" / f"{after.run[1]}.json").is_file()
        summary = pd.read_csv(layout.download_summary).set_index("term")
        assert summary.loc["nurse", ["downloaded", "failed"]].tolist() == [3, 1]
        code, out, _ = gimg(*args)
        assert "download: 0 done, 1 already done" in out and server.requests["/d.jpg"] == 2
