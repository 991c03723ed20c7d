"""Bing Images over HTTP: the async result pages, whose results carry their data in an `m` JSON attribute.

The request side follows SearXNG's bing_images.py and bing.py (2025-2026): `/images/async` with `async=1` (and
`mmasync=1`, which Bing's own page sends), the market in `mkt`/`cc` and the _EDGE_CD/_EDGE_S cookies, the
language in `setlang` and SRCHHPGUSR's SRCHLANG, safe search in `adlt` and SRCHHPGUSR's ADLT.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser

from .base import Hit, Ranker, SearchResult, check_page
from .context import SearchContext
from .http import HttpEngine

DEFAULT_BASE = "https://www.bing.com"
PAGE_SIZE = 35
ADULT = {"off": "off", "moderate": "moderate", "strict": "strict"}  # the adlt URL parameter
ADULT_COOKIE = {"off": "OFF", "moderate": "DEMOTE", "strict": "STRICT"}  # ADLT in the SRCHHPGUSR cookie


def bing_params(term: str, first: int, context: SearchContext) -> dict[str, str]:
    """The query parameters of the result page that starts at result `first` (from 1)."""
    params = {"q": term, "async": "1", "first": str(first), "count": str(PAGE_SIZE), "mmasync": "1"}
    if context.market:
        params.update(mkt=context.market, cc=str(context.country))
    if context.interface_language:
        params["setlang"] = context.interface_language
    params["adlt"] = ADULT[context.safe_search]
    return params


def bing_cookies(context: SearchContext) -> dict[str, str]:
    """The cookies in which Bing keeps market, language and safe search (values as SearXNG sets them)."""
    language = (context.interface_language or "").lower()
    cookies = {}
    if context.market:
        market = context.market.lower()
        cookies["_EDGE_CD"] = f"m={market}&u={language or market}"
        cookies["_EDGE_S"] = f"mkt={market}&ui={language or market}"
    preferences = [f"SRCHLANG={language}"] if language else []
    cookies["SRCHHPGUSR"] = "&".join([*preferences, f"ADLT={ADULT_COOKIE[context.safe_search]}"])
    return cookies


class _MetadataAnchors(HTMLParser):
    """Collects (murl, purl) from every <a m="{json}">; the parser unescapes the attribute's HTML entities."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hits: list[Hit] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        metadata = dict(attrs).get("m")
        if not metadata:
            return
        try:
            data = json.loads(metadata)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("murl") and data.get("purl"):
            self.hits.append((str(data["murl"]), str(data["purl"])))


def parse_bing(text: str) -> list[Hit]:
    """(image URL, page URL) of each result of a Bing Images page, in page order."""
    parser = _MetadataAnchors()
    parser.feed(text)
    parser.close()
    return parser.hits


class BingEngine(HttpEngine):
    """Bing Images: requests `{base}/images/async?q=..&first=..&count=35` in a context until enough results."""

    name = "bing"
    default_base = DEFAULT_BASE

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results; pages until the limit, or until a page brings nothing new."""
        ranker = Ranker(self.name)
        first = 1  # Bing's `first` is the 1-based position of the page's first result
        with self.session(bing_cookies(self.context)) as session:
            while len(ranker.results) < limit:
                text = self.page(session, term, "/images/async", bing_params(term, first, self.context))
                hits = parse_bing(text)
                check_page(self.name, term, text, hits, first_page=first == 1)
                if not ranker.add(hits, limit):
                    break
                first += len(hits)
        return ranker.results
