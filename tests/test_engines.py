"""The search engines: parsers on the saved pages, and Bing/DuckDuckGo over HTTP against a server on 127.0.0.1."""

from __future__ import annotations

import html
import json

import pytest
from localhttp import reply, serve

from gimg.engines import ENGINES, SearchResult, default_page_delay, make_engine
from gimg.options import DownloadOptions
from gimg.engines.base import USER_AGENT
from gimg.engines.bing import parse_bing
from gimg.engines.duckduckgo import parse_duckduckgo, parse_vqd
from gimg.errors import EngineError, GimgError

CAPTCHA = "<html><body><form id='challenge-form'>Please solve this CAPTCHA to continue</form></body></html>"
CHANGED = "<html><body><div class='new-layout'><img src='x.jpg'></div></body></html>"


@pytest.mark.parametrize(
    "name, count, first",
    [
        (
            "bing_images_real_excerpt.html",
            2,
            ("https://img.shetu66.com/2023/03/30/1680143200942448.png", "https://www.shetu66.com/yuansu/miankou/"),
        ),
        ("bing_images_searx_structure_snippet.html", 3, ("img_url", "page_url")),
    ],
)
def test_bing_parser_reads_saved_pages(fixtures, name, count, first):
    hits = parse_bing((fixtures / "pages" / name).read_text(encoding="utf-8"))
    assert len(hits) == count
    assert hits[0] == first


def test_duckduckgo_parser_reads_saved_answer(fixtures):
    text = (fixtures / "pages" / "duckduckgo_i_js_searx_structure_snippet.json").read_text()
    hits, following = parse_duckduckgo(text)
    assert hits == [("https://image1", "https://site1.url"), ("https://image2", "https://site2.url")]
    assert following is None


@pytest.mark.parametrize(
    "page, token",
    [("<script>vqd='4-1234567890123'</script>", "4-1234567890123"), ('x&vqd="3-99"&y', "3-99"), ("nothing", None)],
)
def test_vqd_token(page, token):
    assert parse_vqd(page) == token


def _bing_page(start: int, stop: int) -> str:
    """A Bing async page of results start..stop-1, in the markup of the real a.iusc results."""
    anchors = []
    for number in range(start, stop):
        data = {"murl": f"http://img.test/{number}.jpg", "purl": f"http://page.test/{number}", "t": f"r{number}"}
        anchors.append(f'<li><a class="iusc" m="{html.escape(json.dumps(data))}" href="/images/search"></a></li>')
    return f'<ul class="dgControl_list">{"".join(anchors)}</ul>'


@pytest.mark.parametrize("end", ["empty", "repeat"])
@pytest.mark.parametrize("limit, pages, found", [(50, 2, 50), (200, 4, 80)])
def test_bing_paginates_until_limit_or_nothing_new(end, limit, pages, found):
    total = 80

    def route(path, query):
        assert path == "/images/async" and query["count"] == "35" and query["mmasync"] == "1"
        first = int(query["first"])
        if first > total:
            return reply("" if end == "empty" else _bing_page(total - 10, total + 1))
        return reply(_bing_page(first, min(first + 35, total + 1)))

    with serve(route) as server:
        results = make_engine(DownloadOptions(engine="bing", engine_url=server.url)).search("nurse", limit)
    assert [result.rank for result in results] == list(range(1, found + 1))
    assert results[0] == SearchResult(1, "http://img.test/1.jpg", "http://page.test/1", "bing")
    assert results[-1].url == f"http://img.test/{found}.jpg"
    queries = [query for _, query, _ in server.log]
    assert [query["first"] for query in queries] == ["1", "36", "71", "81"][:pages]
    assert {query["q"] for query in queries} == {"nurse"}


@pytest.mark.parametrize("engine", ["bing", "duckduckgo"])
@pytest.mark.parametrize(
    "page, status, message",
    [
        (CAPTCHA, 200, "{engine}: blocked by a captcha/consent page for 'nurse'"),
        ("Our systems have detected unusual traffic from your network.", 429, "blocked by a captcha"),
        (CHANGED, 200, "markup changed"),
        ("Internal error", 500, "HTTP 500"),
    ],
)
def test_engines_fail_loudly_on_block_and_markup_pages(engine, page, status, message):
    def route(path, query):
        if path == "/" and status == 200 and page is CHANGED:
            return reply("<script>vqd='4-42'</script>")
        return reply(page, status=status)

    with serve(route) as server, pytest.raises(EngineError) as caught:
        make_engine(DownloadOptions(engine=engine, engine_url=server.url)).search("nurse", 10)
    text = str(caught.value)
    assert text.startswith(f"{engine}: ") and message.format(engine=engine) in text and "\n" not in text


def test_duckduckgo_follows_next_and_sends_token():
    def route(path, query):
        if path == "/":
            return reply('<html><script>DDG.deep.initialize("/d.js?q=nurse", vqd="4-777");</script></html>')
        page = int(query.get("s", "0")) // 3 + 1  # i.js pages by offset `s`; its `p` is safe search
        results = [{"image": f"http://img.test/{page}-{n}.jpg", "url": f"http://page.test/{n}"} for n in range(3)]
        answer = {"results": results}
        if page < 3:
            answer["next"] = f"i.js?q=nurse&o=json&s={page * 3}"
        return reply(json.dumps(answer), "application/json")

    with serve(route) as server:
        results = make_engine(DownloadOptions(engine="duckduckgo", engine_url=server.url)).search("nurse", 100)
    assert len(results) == 9 and results[3] == SearchResult(
        4, "http://img.test/2-0.jpg", "http://page.test/0", "duckduckgo"
    )
    assert [query.get("vqd") for path, query, _ in server.log if path == "/i.js"] == ["4-777"] * 3


@pytest.mark.parametrize("engine", ["bing", "duckduckgo"])
def test_requests_say_who_they_are(engine):
    with serve(lambda path, query: reply("<p>no results</p>")) as server:
        with pytest.raises(EngineError):
            make_engine(DownloadOptions(engine=engine, engine_url=server.url)).search("nurse", 10)
    assert server.log[0][2]["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("gimg/") and USER_AGENT.endswith(" (+research; image-search audit)")


def test_unknown_engine_lists_choices():
    with pytest.raises(GimgError, match="unknown engine 'yahoo': choose one of google, google-basic, bing, duckduckgo, urls"):
        make_engine(DownloadOptions(engine="yahoo"))
    assert tuple(ENGINES) == ("google", "google-basic", "bing", "duckduckgo", "urls")


@pytest.mark.parametrize(
    "base, delay",
    [(None, 1.0), ("https://www.bing.com", 1.0), ("http://127.0.0.1:8000", 0.0), ("http://localhost", 0.0)],
)
def test_page_delay_is_polite_except_locally(base, delay):
    assert default_page_delay(base) == delay


def test_urls_engine_orders_by_rank_or_file_order(tmp_path):
    table = tmp_path / "urls.csv"
    table.write_text(
        "term,url,rank,source_page\n"
        "nurse,http://a.test/3.jpg,3,http://p.test/3\n"
        "nurse,http://a.test/1.jpg,1,\n"
        "judge,http://b.test/x.jpg,,\n"
        "judge,http://b.test/y.jpg,,\n"
        "judge,http://b.test/x.jpg,,\n"
        "nurse,http://a.test/2.jpg,2,\n"
    )
    engine = make_engine(DownloadOptions(engine="urls", urls=table))
    assert [(r.rank, r.url, r.source_page) for r in engine.search("nurse", 10)] == [
        (1, "http://a.test/1.jpg", ""),
        (2, "http://a.test/2.jpg", ""),
        (3, "http://a.test/3.jpg", "http://p.test/3"),
    ]
    assert [(r.rank, r.url) for r in engine.search("judge", 1)] == [(1, "http://b.test/x.jpg")]
    assert [r.url for r in engine.search("judge", 10)] == ["http://b.test/x.jpg", "http://b.test/y.jpg"]
    with pytest.raises(EngineError, match="urls: no rows for 'pilot'"):
        engine.search("pilot", 10)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found: give --urls a CSV with columns term,url"),
        ("term,link\nnurse,http://a.test/1.jpg\n", "lacks column\\(s\\) url"),
        ("term,url,rank\nnurse,http://a.test/1.jpg,first\n", "line 2: rank 'first'"),
    ],
)
def test_urls_engine_rejects_bad_files(tmp_path, content, message):
    table = tmp_path / "urls.csv"
    if content is not None:
        table.write_text(content)
    with pytest.raises(GimgError, match=message):
        make_engine(DownloadOptions(engine="urls", urls=table))


def test_urls_engine_needs_a_file():
    with pytest.raises(GimgError, match="--engine urls needs --urls CSV"):
        make_engine(DownloadOptions(engine="urls"))


@pytest.mark.parametrize(
    "engine, answer",
    [
        ("bing", '<div id="b_content"><ol><li class="b_no"><h1>There are no results for <strong>xq</strong></h1>'),
        ("duckduckgo", json.dumps({"results": [], "query": "xq"})),
    ],
)
def test_zero_results_is_not_markup_changed(engine, answer):
    def route(path, query):
        return reply("<script>vqd='4-42'</script>") if path == "/" else reply(answer)

    with serve(route) as server:
        assert make_engine(DownloadOptions(engine=engine, engine_url=server.url)).search("xq", 10) == []


@pytest.mark.parametrize("engine", ["bing", "duckduckgo"])
def test_engine_pages_are_retried_after_5xx_and_429(engine):
    answers = {"count": 0}

    def route(path, query):
        if path == "/":
            return reply("<script>vqd='4-42'</script>")
        answers["count"] += 1
        if answers["count"] == 1:
            return reply("busy", status=503)
        if answers["count"] == 2:
            return reply("slow down", status=429, Retry_After="0")
        if engine == "bing":
            return reply(_bing_page(1, 4) if query["first"] == "1" else "")
        return reply(json.dumps({"results": [{"image": f"http://img.test/{n}.jpg", "url": ""} for n in range(3)]}))

    with serve(route) as server:
        results = make_engine(DownloadOptions(engine=engine, engine_url=server.url)).search("nurse", 3)
    assert len(results) == 3


def test_long_retry_after_on_a_search_page_fails_the_term_in_one_line():
    with serve(lambda path, query: reply("slow down", status=429, Retry_After="3600")) as server:
        with pytest.raises(EngineError, match=r"^bing: rate limited \(HTTP 429, Retry-After 3600 s\) for 'nurse'"):
            make_engine(DownloadOptions(engine="bing", engine_url=server.url)).search("nurse", 10)
    assert len(server.log) == 1
