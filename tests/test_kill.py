"""kill -9 a real `python -m gimg download` mid-run, run it again, and check every result is accounted for once."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultserver import HTML, encode, ok, photo, serve, send

from gimg.downloader import read_journal
from gimg.layout import JOURNAL, Layout

TERMS = {"alpha": 30, "beta/../ ☕.": 12}  # results per term; the second name is hostile on purpose


def _slow_images(state: dict) -> dict:
    """Distinct images that answer after state["delay"] seconds, a 404, an HTML page, and an exact copy."""

    def image(number: int):
        body = encode(photo(number), "JPEG", quality=90)

        def behave(handler, n):
            time.sleep(state["delay"])
            send(handler, body)

        return behave

    routes = {f"/{number}.jpg": image(number) for number in range(50)}
    routes["/html.jpg"] = ok(HTML)
    routes["/copy.jpg"] = routes["/3.jpg"]
    return routes


def _urls(server) -> dict[str, list[str]]:
    numbers = iter(range(50))
    urls = {term: [server.link(f"/{next(numbers)}.jpg") for _ in range(count)] for term, count in TERMS.items()}
    urls["alpha"][5:8] = [server.link("/html.jpg"), server.link("/missing.jpg"), server.link("/copy.jpg")]
    return urls


def _gimg(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "gimg", "download", str(tmp_path / "terms.txt"), "--out", str(tmp_path / "out"),
            "--engine", "urls", "--urls", str(tmp_path / "urls.csv"), "--limit", "100", "--workers", "2"]


def _journaled(tmp_path: Path, term: str) -> set[tuple[int, str]]:
    return set(read_journal(Layout(tmp_path / "out").downloaded(term) / JOURNAL))


@pytest.mark.parametrize("kill_after", [2, 15])
def test_kill_9_then_rerun_accounts_for_every_result_once(tmp_path, kill_after):
    state = {"delay": 0.4}
    with serve(_slow_images(state)) as server:
        urls = _urls(server)
        (tmp_path / "terms.txt").write_text("\n".join(TERMS) + "\n", encoding="utf-8")
        rows = [f'"{term}",{url},{rank}' for term, links in urls.items() for rank, url in enumerate(links, 1)]
        (tmp_path / "urls.csv").write_text("term,url,rank\n" + "\n".join(rows) + "\n", encoding="utf-8")

        process = subprocess.Popen(_gimg(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while len(_journaled(tmp_path, "alpha")) < kill_after and process.poll() is None:
            assert time.monotonic() < deadline, "the download never got going"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "killed mid-run, not finished"
        layout = Layout(tmp_path / "out")
        assert not layout.manifest("alpha").exists()
        before = {term: _journaled(tmp_path, term) for term in TERMS}
        served = server.requests.copy()

        state["delay"] = 0.0
        rerun = subprocess.run(_gimg(tmp_path), capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr[-2000:]

    for term, links in urls.items():
        folder = layout.downloaded(term)
        with (folder / "manifest.csv").open(newline="", encoding="utf-8") as handle:
            manifest = list(csv.DictReader(handle))
        assert [(int(row["rank"]), row["url"]) for row in manifest] == list(enumerate(links, 1)), "each result once"
        kept = [row["file"] for row in manifest if row["status"] == "downloaded"]
        assert sorted(path.name for path in folder.glob("*.jpg")) == sorted(kept), "no file doubled or left over"
        hashes = [hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in kept]
        assert len(set(hashes)) == len(hashes)
        assert not list(folder.rglob("*.tmp")) and not (folder / JOURNAL).exists()
        for rank, url in before[term]:
            path = url.removeprefix(server.url)
            assert server.requests[path] == served[path], f"{path} was journaled, yet fetched again"
    statuses = {row["url"].rsplit("/", 1)[1]: row["status"] for row in _manifest(layout, "alpha")}
    assert (statuses["html.jpg"], statuses["missing.jpg"], statuses["copy.jpg"]) == ("rejected", "failed", "duplicate")
    assert sorted(os.listdir(tmp_path / "out" / "Downloaded_images")) == sorted(
        layout.downloaded(term).name for term in TERMS
    ), "the hostile term stays one folder inside --out"


def _manifest(layout: Layout, term: str) -> list[dict]:
    with layout.manifest(term).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
