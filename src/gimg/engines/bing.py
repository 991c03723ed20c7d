"""Bing Images over HTTP: the async result pages, whose results carry their data in an `m` JSON attribute."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from ..options import DownloadOptions
from .base import Hit, Ranker, SearchResult, Throttle, check_page, get_page, new_session

DEFAULT_BASE = "https://www.bing.com"
PAGE_SIZE = 35


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


class BingEngine:
    """Bing Images: requests `{base}/images/async?q=..&first=..&count=35&mmasync=1` until enough results."""

    name = "bing"

    @classmethod
    def from_options(cls, options: DownloadOptions, *, page_delay: float) -> BingEngine:
        return cls(options.engine_url, page_delay=page_delay)

    def __init__(self, base_url: str | None = None, *, page_delay: float = 1.0) -> None:
        self.base_url = (base_url or DEFAULT_BASE).rstrip("/")
        self.throttle = Throttle(page_delay)

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results; pages until the limit, or until a page brings nothing new."""
        ranker = Ranker(self.name)
        first = 1  # Bing's `first` is the 1-based position of the page's first result
        with new_session() as session:
            while len(ranker.results) < limit:
                self.throttle.wait()
                params = {"q": term, "first": first, "count": PAGE_SIZE, "mmasync": 1}
                text = get_page(
                    session, self.name, term, f"{self.base_url}/images/async", params, retry_wait=self.throttle.delay
                ).text
                hits = parse_bing(text)
                check_page(self.name, term, text, hits, first_page=first == 1)
                if not ranker.add(hits, limit):
                    break
                first += len(hits)
        return ranker.results
