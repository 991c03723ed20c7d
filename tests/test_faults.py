"""The download stage against a fault-injection server: every fault ends as the right manifest row and files."""

from __future__ import annotations

import csv
import email.utils
import hashlib
import time
from dataclasses import replace
from pathlib import Path

import pytest
from faultserver import (
    HTML,
    SVG,
    animated_gif,
    cmyk_jpeg,
    cut_short,
    encode,
    exif_rotated_jpeg,
    gray16_png,
    ok,
    oversized,
    photo,
    png_bomb,
    redirect_loop,
    reset,
    serve,
    slow,
    status_then,
)
from PIL import Image

from gimg.download import COLUMNS, run_download
from gimg.downloader import Record, read_journal
from gimg.engines.base import USER_AGENT
from gimg.fetch import FetchOptions, retry_after_seconds
from gimg.layout import JOURNAL, Layout
from gimg.options import DownloadOptions

FAST = FetchOptions(
    connections=8, connect_timeout=2, read_timeout=0.5, max_seconds=5, max_bytes=200_000,
    attempts=3, backoff=0.05, max_retry_after=2,
)
GOOD = encode(photo(0), "JPEG", quality=90)
WHOLE = encode(photo(5, (200, 150)), "JPEG", quality=90)

# path -> (behaviour, manifest status, error fragment, requests the server should see)
FAULTS = {
    "/ok.jpg": (ok(GOOD), "downloaded", "", 1),
    "/slow-ok.jpg": (slow(encode(photo(6), "JPEG"), 0.2), "downloaded", "", 1),
    "/slow.jpg": (slow(GOOD, 3.0), "failed", "read timeout (after 3 attempts)", 3),
    "/reset.jpg": (reset(), "failed", "connection error: Connection reset by peer (after 3 attempts)", 3),
    "/reset-once.jpg": (reset(then=encode(photo(7), "JPEG")), "downloaded", "", 2),
    "/429.jpg": (status_then(429, encode(photo(8), "JPEG"), retry_after="1"), "downloaded", "", 2),
    "/429-long.jpg": (status_then(429, GOOD, times=9, retry_after="3600"), "failed", "HTTP 429: Retry-After 3600 s is over the 2 s limit", 1),
    "/503-date.jpg": (
        status_then(503, encode(photo(9), "JPEG"), retry_after=email.utils.formatdate(time.time() + 1, usegmt=True)),
        "downloaded", "", 2,
    ),
    "/500-once.jpg": (status_then(500, encode(photo(10), "JPEG")), "downloaded", "", 2),
    "/500.jpg": (status_then(500, GOOD, times=9), "failed", "HTTP 500 (after 3 attempts)", 3),
    "/404.jpg": (None, "failed", "HTTP 404", 1),
    "/loop.jpg": (redirect_loop, "failed", "redirect loop: more than 10 redirects", 11),
    "/big-declared.jpg": (oversized(8, declared=True), "rejected", "too large: over 200000 bytes", 1),
    "/big-chunked.jpg": (oversized(8, declared=False), "rejected", "too large: over 200000 bytes", 1),
    "/cut.jpg": (cut_short(WHOLE), "failed", "connection error: IncompleteRead (after 3 attempts)", 3),
    "/empty.jpg": (ok(b""), "rejected", "not an image: empty body", 1),
    "/truncated.jpg": (ok(WHOLE[: len(WHOLE) // 2]), "rejected", "undecodable jpg: image file is truncated", 1),
    "/html.jpg": (ok(HTML), "rejected", "not an image: the server sent HTML/XML", 1),
    "/vector.svg": (ok(SVG, "image/svg+xml"), "rejected", "svg: not a raster image", 1),
    "/bomb.png": (ok(png_bomb(), "image/png"), "rejected", "decompression bomb", 1),
    "/tiny.png": (ok(encode(Image.new("RGB", (20, 20)), "PNG"), "image/png"), "rejected", "too small: 20x20", 1),
    "/cmyk.jpg": (ok(cmyk_jpeg()), "downloaded", "", 1),
    "/gray16.png": (ok(gray16_png(), "image/png"), "downloaded", "", 1),
    "/animated.gif": (ok(animated_gif(), "image/gif"), "downloaded", "", 1),
    "/rotated.jpg": (ok(exif_rotated_jpeg()), "downloaded", "", 1),
    "/copy.jpg": (ok(GOOD), "duplicate", "same image as 0001_", 1),
    "/near.jpg": (ok(encode(photo(0), "JPEG", quality=60)), "downloaded", "", 1),
}


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """One download of every fault (plus an ftp:// URL) through the urls engine; yields (server, folder, rows)."""
    routes = {path: behaviour for path, (behaviour, *_) in FAULTS.items() if behaviour}
    base = tmp_path_factory.mktemp("faults")
    with serve(routes) as server:
        table = base / "urls.csv"
        lines = [f"faults,{server.link(path)}" for path in FAULTS] + ["faults,ftp://files.test/a.jpg"]
        table.write_text("term,url\n" + "\n".join(lines) + "\n", encoding="utf-8")
        options = DownloadOptions(engine="urls", urls=table, limit=100, max_per_host=2)
        outcomes = run_download(["faults"], base / "out", options, fetch=FAST)
        assert outcomes[0].status == "done"
        folder = Layout(base / "out").downloaded("faults")
        yield server, folder, _rows(folder / "manifest.csv"), outcomes[0].detail


@pytest.mark.parametrize("path", FAULTS)
def test_each_fault_has_its_row_and_request_count(faulty, path):
    server, folder, rows, _ = faulty
    _, status, error, requests = FAULTS[path]
    row = next(row for row in rows if row["url"] == server.link(path))
    assert (row["status"], row["error"].startswith(error) if error else row["error"] == "") == (status, True), row
    assert server.requests[path] == requests
    if status == "downloaded":
        with Image.open(folder / row["file"]) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")
        assert hashlib.sha256((folder / row["file"]).read_bytes()).hexdigest() == row["sha256"]
    elif status == "rejected" and row["file"]:
        assert row["file"].startswith("_quarantine/") and (folder / row["file"]).is_file()
    else:
        assert row["file"] == ""


def test_every_result_is_one_row_and_every_kept_file_one_row(faulty):
    server, folder, rows, detail = faulty
    assert [int(row["rank"]) for row in rows] == list(range(1, len(FAULTS) + 2))
    assert rows[-1]["error"] == "not an http(s) URL"
    kept = {row["file"] for row in rows if row["status"] == "downloaded"}
    assert {path.name for path in folder.glob("*.jpg")} == kept
    quarantined = {row["file"] for row in rows if row["status"] == "rejected" and row["file"]}
    assert {f"_quarantine/{path.name}" for path in (folder / "_quarantine").iterdir()} == quarantined
    assert not list(folder.rglob("*.tmp")) and not (folder / JOURNAL).exists()
    assert detail.startswith("11 downloaded, 1 duplicate, 8 rejected, 8 failed")
    assert server.agents == {USER_AGENT}


@pytest.mark.parametrize("per_host", [1, 3])
def test_per_host_limit_holds_under_load(tmp_path, per_host):
    """Two hosts (127.0.0.1 and 127.0.0.2), 20 images each, 20 ms of latency: neither sees more than per_host."""
    images = {f"/{number}.jpg": ok(encode(photo(number), "JPEG")) for number in range(20)}
    with serve(images, latency=0.02) as one, serve(images, host="127.0.0.2", latency=0.02) as two:
        table = tmp_path / "urls.csv"
        table.write_text("term,url\n" + "".join(f"t,{server.link(path)}\n" for path in images for server in (one, two)))
        options = DownloadOptions(engine="urls", urls=table, limit=40, max_per_host=per_host)
        outcome = run_download(["t"], tmp_path / "out", options, fetch=replace(FAST, connections=16))
    assert outcome[0].detail.startswith("20 downloaded, 20 duplicate"), "both hosts serve the same 20 images"
    for server in (one, two):
        assert server.max_in_flight == per_host, "16 threads and 20 slow images per host fill every allowed slot"
        assert server.max_connections <= per_host


@pytest.mark.parametrize(
    "path, check",
    [
        ("/rotated.jpg", lambda image: image.size == (64, 96)),
        ("/animated.gif", lambda image: image.getpixel((5, 5))[0] > 200 > image.getpixel((5, 5))[2] + 150),
        ("/gray16.png", lambda image: image.getpixel((0, 59))[0] > 200 > image.getpixel((0, 0))[0] + 150),
        ("/cmyk.jpg", lambda image: image.size == (96, 64)),
    ],
)
def test_awkward_images_become_upright_rgb(faulty, path, check):
    server, folder, rows, _ = faulty
    row = next(row for row in rows if row["url"] == server.link(path))
    with Image.open(folder / row["file"]) as image:
        assert check(image.convert("RGB"))


def test_plain_jpeg_is_kept_byte_for_byte_and_near_copy_is_reported(faulty):
    server, folder, rows, detail = faulty
    first = next(row for row in rows if row["url"] == server.link("/ok.jpg"))
    near = next(row for row in rows if row["url"] == server.link("/near.jpg"))
    assert (folder / first["file"]).read_bytes() == GOOD
    with (folder / "near_duplicates.csv").open(newline="") as handle:
        pairs = [(row["file"], row["near"]) for row in csv.DictReader(handle)]
    assert (near["file"], first["file"]) in pairs
    assert "near-duplicate pairs in near_duplicates.csv" in detail


def test_rerun_with_other_results_leaves_no_stale_files(tmp_path):
    images = {f"/{number}.jpg": ok(encode(photo(number), "JPEG")) for number in range(6)}
    with serve(images) as server:
        out = tmp_path / "out"
        for numbers in ((0, 1, 2, 3), (2, 4, 5)):
            table = tmp_path / "urls.csv"
            table.write_text("term,url\n" + "".join(f"t,{server.link(f'/{n}.jpg')}\n" for n in numbers))
            Layout(out).manifest("t").unlink(missing_ok=True)
            run_download(["t"], out, DownloadOptions(engine="urls", urls=table, max_per_host=2), fetch=FAST)
    folder = Layout(out).downloaded("t")
    rows = _rows(folder / "manifest.csv")
    assert [row["url"].rsplit("/", 1)[1] for row in rows] == ["2.jpg", "4.jpg", "5.jpg"]
    assert sorted(path.name for path in folder.glob("*.jpg")) == sorted(row["file"] for row in rows)


def test_journal_ignores_a_row_cut_by_a_kill(tmp_path):
    from gimg.downloader import Journal

    journal = Journal(tmp_path / JOURNAL)
    journal.append([Record(1, "http://a/1.jpg", "", "urls", "t", "ab", "failed", "HTTP 404", "")])
    journal.close()
    with (tmp_path / JOURNAL).open("a") as handle:
        handle.write('2,http://a/2.jpg,,urls,t,cd,downloaded,,0002_1234')  # no newline: the kill came here
    assert list(read_journal(tmp_path / JOURNAL)) == [(1, "http://a/1.jpg")]


@pytest.mark.parametrize("value, seconds", [("3", 3.0), ("0.5", 0.5), ("soon", None), (None, None), ("-4", 0.0)])
def test_retry_after_values(value, seconds):
    assert retry_after_seconds(value) == seconds
