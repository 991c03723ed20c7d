"""Google Images without JavaScript: the basic (WML) results page Google serves to feature phones.

Since 2025 Google's desktop result pages need JavaScript; the `google` engine reads them in headless chromium.
This engine asks, as SearXNG's google.py and google_images.py do since 2026 (searxng/searxng#6359), for
`/wml/search?q=..&tbm=isch` with a Nokia feature-phone User-Agent, `Accept: */*` and the CONSENT cookie, and reads
each result from its `/imgres?imgurl=<image>&imgrefurl=<page>` link. Use it where chromium or chromedriver is
missing (google_engine picks it then), or on its own as `google-basic`.

What its parser was tested on: the only real Google markup at hand, a December 2015 desktop block from searx's
tests whose result link has the same `/imgres?imgurl=..&imgrefurl=..` form; and a page we wrote in the structure
SearXNG's parser reads (tests/fixtures/pages/google_basic_wml_constructed.html). No real WML page was available.
Unlike SearXNG, gimg cannot present an Android browser's TLS fingerprint (SearXNG uses curl_cffi's
`impersonate="chrome99_android"`), and reports of 2026-10 say Google answers 403 to this endpoint from some
networks: a blocked page fails the term loudly, as every engine does.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..options import DownloadOptions
from .base import Engine, Hit, Ranker, SearchResult, check_page
from .context import SearchContext
from .google import CHROMEDRIVER, CHROMIUM, CONSENT_COOKIE, DEFAULT_BASE, GoogleEngine, google_params
from .http import HttpEngine
from .record import RequestRecorder

# One of the Nokia User-Agents SearXNG sends to this endpoint.
FEATURE_PHONE_USER_AGENT = "Nokia6230i/2.0 (03.80) Profile/MIDP-2.0 Configuration/CLDC-1.1"


class _ImageLinks(HTMLParser):
    """Collects (imgurl, imgrefurl) from every link to /imgres?, in page order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hits: list[Hit] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href") or ""
        if tag != "a" or "/imgres?" not in href:
            return
        query = parse_qs(urlsplit(href).query)
        image = query.get("imgurl", [""])[0]
        if image:
            self.hits.append((image, query.get("imgrefurl", [""])[0]))


def parse_google_basic(text: str) -> list[Hit]:
    """(image URL, page URL) of each result of a JavaScript-free Google Images page, in page order."""
    parser = _ImageLinks()
    parser.feed(text)
    parser.close()
    return parser.hits


def google_basic_params(term: str, start: int, context: SearchContext) -> dict[str, str]:
    """The query parameters of the basic results page whose first result is number start (from 0)."""
    params = {"q": term, "tbm": "isch", "sca_esv": "1", **google_params(context), "ie": "utf8", "oe": "utf8"}
    if start:
        params["start"] = str(start)
    return params


class GoogleBasicEngine(HttpEngine):
    """Google Images' JavaScript-free page: `{base}/wml/search?q=..&tbm=isch&start=..` until enough results."""

    name = "google-basic"
    default_base = DEFAULT_BASE
    default_user_agent = FEATURE_PHONE_USER_AGENT

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results; pages by `start` until the limit, or until a page brings nothing new."""
        ranker = Ranker(self.name)
        start = 0
        with self.session(CONSENT_COOKIE) as session:
            while len(ranker.results) < limit:
                params = google_basic_params(term, start, self.context)
                text = self.page(session, term, "/wml/search", params, headers={"Accept": "*/*"})
                hits = parse_google_basic(text)
                check_page(self.name, term, text, hits, first_page=start == 0)
                if not ranker.add(hits, limit):
                    break
                start += len(hits)
        return ranker.results


def google_engine(
    options: DownloadOptions,
    *,
    page_delay: float,
    context: SearchContext,
    recorder: RequestRecorder | None,
    driver_path: Path = CHROMEDRIVER,
    browser_path: Path = CHROMIUM,
) -> Engine:
    """Google through chromium when chromium and chromedriver are installed, else its JavaScript-free page.

    The engine's name (google or google-basic) says which one answered, in every result and context record.
    """
    if Path(driver_path).exists() and Path(browser_path).exists():
        return GoogleEngine(options.engine_url, page_delay=page_delay, context=context, recorder=recorder,
                            driver_path=driver_path, browser_path=browser_path)
    return GoogleBasicEngine(options.engine_url, page_delay=page_delay, context=context, recorder=recorder)
