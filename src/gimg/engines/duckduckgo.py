"""DuckDuckGo Images over HTTP: a vqd token from the search page, then the JSON of `i.js`, following `next`."""

from __future__ import annotations

import json
import re

from ..errors import EngineError
from ..options import DownloadOptions
from .base import Hit, Ranker, SearchResult, Throttle, blocked, check_page, get_page, looks_blocked, new_session

DEFAULT_BASE = "https://duckduckgo.com"
_VQD = re.compile(r"""vqd=["']?([\d-]+)""")


def parse_vqd(text: str) -> str | None:
    """The vqd token that DuckDuckGo's search page embeds, which i.js requires."""
    match = _VQD.search(text)
    return match.group(1) if match else None


def parse_duckduckgo(text: str) -> tuple[list[Hit], str | None]:
    """(image URL, page URL) of each result of an i.js JSON answer, and its `next` link (None at the end)."""
    try:
        data = json.loads(text)
    except ValueError:
        return [], None
    if not isinstance(data, dict):
        return [], None
    hits = [
        (str(item["image"]), str(item.get("url") or ""))
        for item in data.get("results") or []
        if isinstance(item, dict) and item.get("image")
    ]
    return hits, data.get("next") or None


def _empty_answer(text: str) -> bool:
    """True for a well-formed i.js answer whose result list is empty: zero results, not a changed format."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("results") == []


class DuckDuckGoEngine:
    """DuckDuckGo Images: `{base}/?q=..` for the token, then `{base}/i.js?q=..&o=json&vqd=..&p=1` and its `next`."""

    name = "duckduckgo"

    @classmethod
    def from_options(cls, options: DownloadOptions, *, page_delay: float) -> DuckDuckGoEngine:
        return cls(options.engine_url, page_delay=page_delay)

    def __init__(self, base_url: str | None = None, *, page_delay: float = 1.0) -> None:
        self.base_url = (base_url or DEFAULT_BASE).rstrip("/")
        self.throttle = Throttle(page_delay)

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results; follows `next` until the limit, the end, or a page with nothing new."""
        ranker = Ranker(self.name)
        with new_session() as session:
            self.throttle.wait()
            text = get_page(
                session, self.name, term, f"{self.base_url}/", {"q": term}, retry_wait=self.throttle.delay
            ).text
            vqd = parse_vqd(text)
            if vqd is None:
                if looks_blocked(text):
                    raise blocked(self.name, term)
                raise EngineError(f"{self.name}: markup changed: no vqd token in the search page for '{term}'")
            url = f"{self.base_url}/i.js"
            params: dict | None = {"q": term, "o": "json", "vqd": vqd, "p": "1", "l": "us-en", "f": ",,,,,"}
            headers = {"Referer": f"{self.base_url}/"}
            first_page = True
            while len(ranker.results) < limit:
                self.throttle.wait()
                text = get_page(
                    session, self.name, term, url, params, headers=headers, retry_wait=self.throttle.delay
                ).text
                hits, following = parse_duckduckgo(text)
                check_page(self.name, term, text, hits, first_page=first_page, empty_answer=_empty_answer(text))
                if not ranker.add(hits, limit) or not following:
                    break
                first_page = False
                url = f"{self.base_url}/{following.lstrip('/')}"
                params = None if "vqd=" in following else {"vqd": vqd}
        return ranker.results
