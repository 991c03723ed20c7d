"""Google Images: the DOM parsers on saved pages, and the real headless chromium against a page on 127.0.0.1."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from localhttp import reply, serve

from gimg.download import run_download
from gimg.engines import make_engine
from gimg.options import DownloadOptions
from gimg.engines.google import CHROMEDRIVER, GoogleEngine, parse_google, parse_google_dom, parse_rg_meta
from gimg.errors import EngineError
from gimg.layout import Layout

needs_browser = pytest.mark.skipif(
    not CHROMEDRIVER.exists(), reason=f"needs Debian chromium and chromium-driver ({CHROMEDRIVER} is absent)"
)
SORRY = "<html><body>Our systems have detected unusual traffic from your computer network.</body></html>"
CHANGED = "<html><body><div id='search'><div class='newResult'><img src='data:,'></div></div></body></html>"


def test_dom_parser_reads_the_rendered_page(fixtures):
    hits = parse_google_dom((fixtures / "pages" / "google_images_dom_rendered.html").read_text(encoding="utf-8"))
    assert len(hits) == 20
    assert hits[0] == ("https://images.example.org/img/nurse/1.jpg", "https://pages.example.org/nurse/1.html")
    assert hits[19][0].endswith("/20.jpg")


def test_dom_parser_finds_nothing_before_the_script_runs(fixtures):
    assert parse_google((fixtures / "pages" / "google_images_dom.html").read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "box, hit",
    [
        ('<img src="https://photos.example.net/a.jpg">', ("https://photos.example.net/a.jpg", "https://p.example/1")),
        ('<img src="https://encrypted-tbn0.gstatic.com/images?q=tbn:x">', None),
        ('<img src="data:image/jpeg;base64,AAAA">', None),
        (
            '<a href="/imgres?imgurl=https%3A%2F%2Fi.example%2Fb.png&amp;imgrefurl=https%3A%2F%2Fr.example%2F">'
            '<img src="https://photos.example.net/thumb.jpg"/></a>',
            ("https://i.example/b.png", "https://r.example/"),
        ),
    ],
)
def test_dom_parser_prefers_the_full_image_link(box, hit):
    page = f'<div><div data-docid="x" data-lpage="https://p.example/1"><h3>{box}</h3></div><img src="https://o.example/z.jpg"></div>'
    assert parse_google_dom(page) == ([hit] if hit else [])


def test_old_rg_meta_format_is_a_fallback(fixtures):
    page = (fixtures / "pages" / "google_images_2015_rg_meta_snippet.html").read_text(encoding="utf-8")
    assert parse_rg_meta(page) == [("b", "a")]
    assert parse_google(page) == [("b", "a")]


@pytest.fixture(scope="module")
def google(fixtures):
    """A Google-shaped server: /search serves our DOM page; /img/<term>/<n>.jpg serves real faces."""
    page = (fixtures / "pages" / "google_images_dom.html").read_bytes()
    faces = sorted((fixtures / "faces" / "images").glob("*.jpg"))

    def route(path, query):
        if path == "/search":
            if query.get("q") == "blocked":
                return reply("", status=302, Location="/sorry/index?continue=/search")
            return reply(CHANGED if query.get("q") == "changed" else page)
        if path == "/sorry/index":
            return reply(SORRY, status=429)
        if path.startswith("/img/"):
            return reply(faces[int(Path(path).stem) % len(faces)].read_bytes(), "image/jpeg")
        return reply("not found", status=404)

    with serve(route) as running:
        yield running


@needs_browser
@pytest.mark.parametrize("limit, found", [(50, 50), (100, 60)])
def test_browser_scrolls_and_presses_more_until_limit(google, limit, found):
    engine = GoogleEngine(google.url, page_delay=0, scroll_wait=1.0)
    results = engine.search("nurse practitioner", limit)
    assert [result.rank for result in results] == list(range(1, found + 1))
    assert results[0].url == f"{google.url}/img/nurse-practitioner/1.jpg"
    assert results[-1].url == f"{google.url}/img/nurse-practitioner/{found}.jpg"
    assert results[-1].source_page == f"https://pages.example.org/nurse-practitioner/{found}.html"
    assert {result.engine for result in results} == {"google"}
    search = [(query, headers) for path, query, headers in google.log if path == "/search"][-1]
    assert search[0] == {"q": "nurse practitioner", "udm": "2"}
    assert "HeadlessChrome" in search[1]["User-Agent"] and "gimg/" in search[1]["User-Agent"]


@needs_browser
@pytest.mark.parametrize(
    "term, message",
    [
        ("blocked", "google: blocked by a captcha/consent page for 'blocked'"),
        ("changed", "google: markup changed: 0 results parsed from a non-empty page"),
    ],
)
def test_browser_fails_loudly(google, term, message):
    with pytest.raises(EngineError) as caught:
        GoogleEngine(google.url, page_delay=0, scroll_wait=0.3).search(term, 10)
    assert str(caught.value) == message


@needs_browser
def test_download_through_google(google, tmp_path):
    assert make_engine(DownloadOptions(engine="google", engine_url=google.url)).throttle.delay == 0
    outcomes = run_download(["nurse"], tmp_path, DownloadOptions(engine="google", engine_url=google.url, limit=6))
    assert [(o.status, o.detail) for o in outcomes] == [("done", "6 downloaded, 0 duplicate, 0 rejected, 0 failed")]
    with Layout(tmp_path).manifest("nurse").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["rank"], row["status"], row["engine"]) for row in rows] == [
        (str(n), "downloaded", "google") for n in range(1, 7)
    ]
