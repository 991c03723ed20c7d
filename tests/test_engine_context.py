"""Search context and request records: each engine's market, language and safe-search parameters, cookies and
headers as a server on 127.0.0.1 receives them, on saved pages, and the context record built from them."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from datetime import datetime

import pytest
from localhttp import reply, serve

from gimg.engines import make_engine
from gimg.engines.base import USER_AGENT
from gimg.engines.context import SearchContext
from gimg.engines.duckduckgo import DuckDuckGoEngine, parse_vqd
from gimg.engines.google import CHROMEDRIVER, CHROMIUM, GoogleEngine
from gimg.engines.google_basic import FEATURE_PHONE_USER_AGENT, GoogleBasicEngine, google_engine, parse_google_basic
from gimg.engines.record import ContextRecord, RequestRecorder, context_record, sha256_of, utc_timestamp
from gimg.errors import EngineError, GimgError
from gimg.options import DownloadOptions

DEFAULT = SearchContext()
US_OFF = SearchContext("en-US", None, "off")
GERMAN_STRICT = SearchContext("de-de", "DE", "strict")
BRITISH = SearchContext("en-GB", "en", "moderate")
CONTEXTS = {"default": DEFAULT, "us-off": US_OFF, "german-strict": GERMAN_STRICT, "british": BRITISH}


def options(engine: str, url: str, context: SearchContext = DEFAULT) -> DownloadOptions:
    """The download options that ask engine at url in context."""
    return DownloadOptions(engine=engine, engine_url=url, market=context.market, language=context.language,
                           safe_search=context.safe_search)

# What each engine must send in each context, written out by hand from the engines' documented mappings.
BING = {
    "default": ({"adlt": "moderate"}, {"SRCHHPGUSR": "ADLT=DEMOTE"}, None),
    "us-off": (
        {"mkt": "en-US", "cc": "US", "setlang": "en", "adlt": "off"},
        {"_EDGE_CD": "m=en-us&u=en", "_EDGE_S": "mkt=en-us&ui=en", "SRCHHPGUSR": "SRCHLANG=en&ADLT=OFF"},
        "en-US,en;q=0.9",
    ),
    "german-strict": (
        {"mkt": "de-DE", "cc": "DE", "setlang": "de", "adlt": "strict"},
        {"_EDGE_CD": "m=de-de&u=de", "_EDGE_S": "mkt=de-de&ui=de", "SRCHHPGUSR": "SRCHLANG=de&ADLT=STRICT"},
        "de,de-DE;q=0.9",
    ),
    "british": (
        {"mkt": "en-GB", "cc": "GB", "setlang": "en", "adlt": "moderate"},
        {"_EDGE_CD": "m=en-gb&u=en", "_EDGE_S": "mkt=en-gb&ui=en", "SRCHHPGUSR": "SRCHLANG=en&ADLT=DEMOTE"},
        "en,en-GB;q=0.9",
    ),
}
# (search-page parameters, i.js parameters, cookies)
DUCKDUCKGO = {
    "default": ({"kl": "wt-wt", "kp": "-1"}, {"l": "wt-wt"}, {"l": "wt-wt", "ah": "wt-wt"}),
    "us-off": (
        {"kl": "us-en", "kp": "-2"}, {"l": "us-en", "ct": "US", "p": "-2"},
        {"l": "us-en", "ah": "us-en", "ad": "en_US", "p": "-2"},
    ),
    "german-strict": (
        {"kl": "de-de", "kp": "1"}, {"l": "de-de", "ct": "DE", "p": "1"},
        {"l": "de-de", "ah": "de-de", "ad": "de_DE", "p": "1"},
    ),
    "british": ({"kl": "uk-en", "kp": "-1"}, {"l": "uk-en", "ct": "GB"}, {"l": "uk-en", "ah": "uk-en", "ad": "en_GB"}),
}
GOOGLE = {
    "default": {},
    "us-off": {"hl": "en", "gl": "us", "safe": "off"},
    "german-strict": {"hl": "de", "gl": "de", "safe": "active"},
    "british": {"hl": "en", "gl": "gb"},
}


def cookies(headers: dict[str, str]) -> dict[str, str]:
    """The cookies of a request, as the server reads its Cookie header."""
    pairs = (part.split("=", 1) for part in headers.get("Cookie", "").split("; ") if part)
    return {name: value for name, value in pairs}


def vqd_for(term: str, user_agent: str) -> str:
    """A token tied to the query and the User-Agent, with characters beyond digits and dashes, as DuckDuckGo's."""
    return "4-" + hashlib.sha1(f"{term}//{user_agent}".encode()).hexdigest()[:16] + "_Zq.9"


@pytest.fixture(scope="module")
def engines_site(fixtures):
    """Bing's real page excerpt, DuckDuckGo's i.js structure and our basic-Google page, served as each engine's."""
    pages = fixtures / "pages"
    bing = (pages / "bing_images_real_excerpt.html").read_text(encoding="utf-8")
    duckduckgo = (pages / "duckduckgo_i_js_searx_structure_snippet.json").read_text(encoding="utf-8")
    basic = (pages / "google_basic_wml_constructed.html").read_text(encoding="utf-8")

    def route(path, query):
        if path == "/images/async":
            return reply(bing if query["first"] == "1" else "")
        if path == "/":
            return reply(f'<html><script>DDG.deep.initialize("/d.js?q=x", vqd="{query["q"]}");</script></html>')
        if path == "/i.js":  # the search page's token is the query itself
            return reply(duckduckgo, "application/json") if query["vqd"] == query["q"] else reply("", status=403)
        if path == "/wml/search":
            return reply(basic if "start" not in query else "")
        return reply("not found", status=404)

    with serve(route) as server:
        yield server


def _requests_since(server, start: int) -> list[tuple[str, dict, dict]]:
    return server.log[start:]


@pytest.mark.parametrize("name", list(CONTEXTS))
def test_bing_sends_market_language_and_safe_search(engines_site, name):
    start = len(engines_site.log)
    engine = make_engine(options("bing", engines_site.url, CONTEXTS[name]))
    results = engine.search("espresso", 10)
    assert [(r.rank, r.url) for r in results] == [
        (1, "https://img.shetu66.com/2023/03/30/1680143200942448.png"),
        (2, "https://p1.itc.cn/q_70/images03/20220822/781685b6a38d4a3fbcc09009ebe81aed.png"),
    ]
    params, jar, language = BING[name]
    sent = _requests_since(engines_site, start)
    assert [query["first"] for _, query, _ in sent] == ["1", "3"]
    for path, query, headers in sent:
        assert path == "/images/async"
        fixed = {"q": "espresso", "async": "1", "first": query["first"], "count": "35", "mmasync": "1"}
        assert query == {**fixed, **params}
        assert cookies(headers) == jar
        assert headers.get("Accept-Language") == language
        assert headers["User-Agent"] == USER_AGENT


@pytest.mark.parametrize("name", list(CONTEXTS))
def test_duckduckgo_sends_region_language_safe_search_and_its_token(engines_site, name):
    start = len(engines_site.log)
    engine = make_engine(options("duckduckgo", engines_site.url, CONTEXTS[name]))
    token_page, images, jar = DUCKDUCKGO[name]
    results = engine.search("nurse", 10)
    assert [(r.url, r.source_page) for r in results] == [
        ("https://image1", "https://site1.url"), ("https://image2", "https://site2.url")
    ]
    (token_path, token_query, token_headers), (images_path, images_query, images_headers) = (
        _requests_since(engines_site, start)
    )
    assert (token_path, images_path) == ("/", "/i.js")
    assert token_query == {"q": "nurse", "iar": "images", "t": "h_", **token_page}
    assert images_query == {
        "o": "json", "q": "nurse", "u": "bing", "bpia": "1", "vqd": "nurse", "a": "h_", **images
    }
    assert cookies(token_headers) == jar and cookies(images_headers) == jar
    assert images_headers["Referer"] == f"{engines_site.url}/" and images_headers["Accept"] == "*/*"
    assert token_headers["User-Agent"] == images_headers["User-Agent"] == USER_AGENT
    assert "Accept-Language" not in token_headers and "Accept-Language" not in images_headers


@pytest.mark.parametrize("name", list(CONTEXTS))
def test_google_basic_sends_language_country_safe_search_and_feature_phone_agent(engines_site, name):
    start = len(engines_site.log)
    engine = GoogleBasicEngine(engines_site.url, page_delay=0, context=CONTEXTS[name])
    results = engine.search("nurse", 25)
    assert [r.rank for r in results] == list(range(1, 11))
    assert results[0].url == "https://images.example.org/nurse/1.jpg"
    assert results[0].source_page == "https://pages.example.org/nurse/1.html"
    assert {r.engine for r in results} == {"google-basic"}
    sent = _requests_since(engines_site, start)
    assert [query.get("start") for _, query, _ in sent] == [None, "10"]
    for path, query, headers in sent:
        page = {"start": query["start"]} if "start" in query else {}
        assert path == "/wml/search"
        fixed = {"q": "nurse", "tbm": "isch", "sca_esv": "1", "ie": "utf8", "oe": "utf8"}
        assert query == {**fixed, **GOOGLE[name], **page}
        assert cookies(headers) == {"CONSENT": "YES+"}
        assert headers["User-Agent"] == FEATURE_PHONE_USER_AGENT and headers["Accept"] == "*/*"
        assert headers.get("Accept-Language") == BING[name][2]


@pytest.mark.parametrize("engine", ["bing", "duckduckgo", "google-basic"])
def test_recorded_requests_are_the_requests_the_server_received(engines_site, engine):
    start = len(engines_site.log)
    recorder = RequestRecorder()
    if engine == "google-basic":
        searcher = GoogleBasicEngine(engines_site.url, page_delay=0, context=GERMAN_STRICT, recorder=recorder)
    else:
        searcher = make_engine(options(engine, engines_site.url, GERMAN_STRICT), recorder=recorder)
    before = utc_timestamp(time.time() - 0.001)  # the stamps are to the millisecond
    searcher.search("nurse", 25)
    after = utc_timestamp(time.time() + 0.001)
    received = _requests_since(engines_site, start)
    records = recorder.records()
    assert len(records) == len(received) >= 2
    for record, (path, query, headers) in zip(records, received):
        assert record.url.startswith(f"{engines_site.url}{path}?")
        assert dict(record.params) == query and len(record.params) == len(query)
        assert record.user_agent == headers["User-Agent"]
        assert record.accept_language == headers.get("Accept-Language")
        assert set(record.cookie_names) == set(cookies(headers)) and record.cookie_names
        assert (record.engine, record.term, record.status, record.error, record.method) == (
            searcher.name, "nurse", 200, "", "GET"
        )
        # When each request started, within the search, and how long it took, no longer than the search itself.
        assert before <= record.started <= after and record.started.endswith("Z")
        assert 0 <= record.seconds <= (datetime.fromisoformat(after) - datetime.fromisoformat(before)).total_seconds()


def test_duckduckgo_token_is_asked_and_used_with_one_user_agent():
    """A server that, like DuckDuckGo, hands out a token bound to the query and the User-Agent, and checks it."""
    running = {}

    def route(path, query):
        agent = running["server"].log[-1][2]["User-Agent"]  # this request's headers (the engine asks one at a time)
        token = vqd_for(query["q"], agent)
        if path == "/":
            return reply(f"<script>vqd='{token}';</script>")
        if query.get("vqd") != token:
            return reply("invalid vqd", status=403)
        offset = int(query.get("s", "0"))
        answer = {"results": [{"image": f"http://img.test/{offset + n}.jpg", "url": ""} for n in range(2)]}
        if offset == 0:
            answer["next"] = f"i.js?q={query['q']}&o=json&s=2&vqd={token}"
        return reply(json.dumps(answer), "application/json")

    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
    with serve(route) as server:
        running["server"] = server
        for agent in (USER_AGENT, firefox):
            engine = DuckDuckGoEngine(server.url, page_delay=0, user_agent=agent)
            assert [r.url for r in engine.search("pilot", 10)] == [f"http://img.test/{n}.jpg" for n in range(4)]
    images = [(query, headers["User-Agent"]) for path, query, headers in server.log if path == "/i.js"]
    assert [(query.get("s"), agent) for query, agent in images] == [
        (None, USER_AGENT), ("2", USER_AGENT), (None, firefox), ("2", firefox)
    ]
    assert {query["vqd"] for query, _ in images} == {vqd_for("pilot", USER_AGENT), vqd_for("pilot", firefox)}


@pytest.mark.parametrize(
    "page, token",
    [
        ("<script>vqd='4-1234567890123'</script>", "4-1234567890123"),
        ('DDG.deep.initialize("/d.js?q=a", vqd="4-27468495325727934516207223006049217853")', "4-274684953257279345"
         "16207223006049217853"),
        ('{"vqd":"5-a9F_b.c~d+e/f="}', "5-a9F_b.c~d+e/f="),
        ("/d.js?q=a&vqd=4-xYz_12&p=1", "4-xYz_12"),
        ("vqd = 'token-with-letters'", "token-with-letters"),
        ("no token here", None),
    ],
)
def test_vqd_token_in_any_format(page, token):
    assert parse_vqd(page) == token


@pytest.mark.parametrize(
    "given, market, language, country, interface, header",
    [
        ((None, None, "moderate"), None, None, None, None, None),
        (("EN-us", None, "off"), "en-US", None, "US", "en", "en-US,en;q=0.9"),
        ((None, "PT-br", "strict"), None, "pt-BR", None, "pt-BR", "pt-BR"),
        (("de-AT", "en", "moderate"), "de-AT", "en", "AT", "en", "en,de-AT;q=0.9,de;q=0.8"),
    ],
)
def test_search_context_normalises(given, market, language, country, interface, header):
    context = SearchContext(*given)
    assert (context.market, context.language, context.country) == (market, language, country)
    assert (context.interface_language, context.accept_language) == (interface, header)
    assert context.to_json() == {"market": market, "language": language, "safe_search": given[2]}


@pytest.mark.parametrize(
    "given, message",
    [
        (("english", None, "moderate"), "market 'english' is not language-COUNTRY: write e.g. en-US"),
        (("en_US", None, "moderate"), "market 'en_US' is not language-COUNTRY"),
        ((None, "english", "moderate"), "language 'english' is not a language code: write e.g. en, de or pt-BR"),
        ((None, None, "medium"), "unknown safe search 'medium': choose one of off, moderate, strict"),
    ],
)
def test_search_context_rejects_bad_values_in_one_line(given, message):
    with pytest.raises(GimgError) as caught:
        SearchContext(*given)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_request_without_answer_is_recorded_with_its_reason():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recorder = RequestRecorder()
    engine = make_engine(options("bing", f"http://127.0.0.1:{port}", US_OFF), recorder=recorder)
    with pytest.raises(EngineError, match="bing: cannot reach"):
        engine.search("nurse", 10)
    records = recorder.records("nurse")
    assert [(r.error, r.status) for r in records] == [("ConnectionError", None)] * 3
    assert dict(records[0].params)["mkt"] == "en-US"
    assert records[0].cookie_names == ("_EDGE_CD", "_EDGE_S", "SRCHHPGUSR")


def test_redirects_are_recorded_hop_by_hop():
    def route(path, query):
        if path == "/images/async" and "moved" not in query:
            return reply("", status=302, Location="/images/async?moved=1&first=1")
        return reply("")

    recorder = RequestRecorder()
    with serve(route) as server:
        assert make_engine(options("bing", server.url), recorder=recorder).search("xq", 5) == []
    assert [(r.status, dict(r.params).get("moved")) for r in recorder.records()] == [(302, None), (200, "1")]


def test_context_record_round_trips_without_cookie_values(engines_site, tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("nurse\npilot\n")
    engine = make_engine(options("bing", engines_site.url, GERMAN_STRICT))
    started = utc_timestamp()
    engine.search("nurse", 10)
    record = context_record(engine, started=started, finished=utc_timestamp(), terms_sha256=sha256_of(terms))
    text = record.to_json()
    document = json.loads(text)
    assert document["format"] == "gimg-context/1" and document["engine"] == "bing"
    assert (document["market"], document["language"], document["safe_search"]) == ("de-DE", "de", "strict")
    assert document["terms_sha256"] == hashlib.sha256(b"nurse\npilot\n").hexdigest()
    assert document["user_agent"] == USER_AGENT and document["gimg_version"] == "0.1.0"
    assert [request["params"][0] for request in document["requests"]] == [["q", "nurse"], ["q", "nurse"]]
    assert document["requests"][0]["cookie_names"] == ["_EDGE_CD", "_EDGE_S", "SRCHHPGUSR"]
    assert "ADLT=STRICT" not in text and "m=de-de" not in text  # cookie names only, never their values
    assert ContextRecord.from_json(text) == record
    assert document["started"] <= document["requests"][0]["started"] <= document["finished"]


def test_blocked_and_changed_basic_pages_fail_loudly():
    def route(path, query):
        if query.get("q") == "blocked":
            return reply("", status=302, Location="/sorry/index?continue=/wml/search")
        if path == "/sorry/index":
            return reply("Our systems have detected unusual traffic", status=429)
        if query.get("q") == "empty":
            return reply("<html><body>Your search - <b>empty</b> - did not match any image results.</body></html>")
        return reply("<html><body><div class='new'><img src='x.jpg'></div></body></html>")

    with serve(route) as server:
        engine = GoogleBasicEngine(server.url, page_delay=0)
        with pytest.raises(EngineError, match="^google-basic: blocked by a captcha/consent page for 'blocked'$"):
            engine.search("blocked", 10)
        with pytest.raises(EngineError, match="^google-basic: markup changed: 0 results parsed"):
            engine.search("changed", 10)
        assert engine.search("empty", 10) == []
    assert [path for path, _, _ in server.log][:2] == ["/wml/search", "/sorry/index"]


needs_browser = pytest.mark.skipif(
    not (CHROMEDRIVER.exists() and CHROMIUM.exists()),
    reason=f"needs Debian chromium and chromium-driver ({CHROMEDRIVER} or {CHROMIUM} is absent)",
)


@needs_browser
def test_google_in_chromium_sends_the_context_and_records_its_page(fixtures):
    page = (fixtures / "pages" / "google_images_dom.html").read_bytes()
    recorder = RequestRecorder()
    with serve(lambda path, query: reply(page) if path == "/search" else reply("", status=404)) as server:
        engine = GoogleEngine(server.url, page_delay=0, scroll_wait=0.3, context=GERMAN_STRICT, recorder=recorder)
        assert len(engine.search("nurse", 5)) == 5
    path, query, headers = next(entry for entry in server.log if entry[0] == "/search")
    assert query == {"q": "nurse", "udm": "2", "hl": "de", "gl": "de", "safe": "active"}
    assert headers["Accept-Language"] == "de,de-DE;q=0.9"
    assert cookies(headers) == {"CONSENT": "YES+"}
    (record,) = recorder.records()
    assert record.url == f"{server.url}/search?q=nurse&udm=2&hl=de&gl=de&safe=active"
    assert record.user_agent == headers["User-Agent"] == engine.user_agent and "HeadlessChrome" in record.user_agent
    assert record.cookie_names == ("CONSENT",) and record.accept_language == headers["Accept-Language"]


def test_google_falls_back_to_its_basic_page_without_chromium(tmp_path):
    missing = tmp_path / "chromedriver"
    engine = google_engine(options("google", "http://127.0.0.1:9"), page_delay=0, context=BRITISH, recorder=None,
                           driver_path=missing)
    assert isinstance(engine, GoogleBasicEngine) and engine.name == "google-basic" and engine.context == BRITISH
    if CHROMEDRIVER.exists() and CHROMIUM.exists():
        found = google_engine(options("google", "http://127.0.0.1:9"), page_delay=0, context=DEFAULT, recorder=None)
        assert isinstance(found, GoogleEngine)


def test_google_basic_parser_reads_the_real_2015_result_link(fixtures):
    page = (fixtures / "pages" / "google_images_2015_rg_meta_snippet.html").read_text(encoding="utf-8")
    assert parse_google_basic(page) == [
        ("http://www.clker.com/cliparts/H/X/l/b/0/0/south-arrow-hi.png",
         "http://www.clker.com/clipart-south-arrow.html"),
    ]
