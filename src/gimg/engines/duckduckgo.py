"""DuckDuckGo Images over HTTP: a vqd token from the search page, then the JSON of `i.js`, following `next`.

The request side follows SearXNG's duckduckgo_extra.py and duckduckgo.py (2026): DuckDuckGo ties the vqd token
to the query and the User-Agent, so one session with one User-Agent asks for the token
(`/?q=..&iar=images&t=h_`) and then for the images (`i.js?o=json&q=..&u=bing&l=..&bpia=1&vqd=..&a=h_`); the
region goes in `l` and the `l`/`ah` cookies (`kl` on the search page), the language in the `ad` cookie, safe
search in `p` and its cookie (`kp` on the search page).
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from ..errors import EngineError
from .base import Hit, Ranker, SearchResult, blocked, check_page, looks_blocked
from .context import SearchContext
from .http import HttpEngine

DEFAULT_BASE = "https://duckduckgo.com"
ALL_REGIONS = "wt-wt"
# The vqd token in any format DuckDuckGo uses (digits and dashes until 2025, other characters since), quoted
# or not, as `vqd="..."`, `vqd='...'`, `"vqd":"..."` or `vqd=...&`.
_VQD = re.compile(r"""vqd["']?\s*[=:]\s*["']?([^"'&\s,;)}\]]+)""")
# Markets whose DuckDuckGo region is not simply country-language (SearXNG's ddg_reg_map, and uk-en for Britain).
_REGIONS = {
    "en-GB": "uk-en", "zh-TW": "tw-tzh", "zh-HK": "hk-tzh", "zh-CN": "cn-zh", "ca-ES": "es-ca", "en-ID": "id-en",
    "id-ID": "id-en", "nb-NO": "no-no", "ja-JP": "jp-jp", "ko-KR": "kr-kr", "ar-SA": "xa-ar", "sl-SI": "sl-sl",
    "th-TH": "th-en", "vi-VN": "vn-en",
}
SEARCH_PAGE_SAFE = {"off": "-2", "moderate": "-1", "strict": "1"}  # kp on the search page
# p on i.js and in its cookie, as SearXNG sends it: moderate is DuckDuckGo's default and is not sent.
IMAGES_SAFE = {"off": "-2", "moderate": None, "strict": "1"}


def parse_vqd(text: str) -> str | None:
    """The vqd token that DuckDuckGo's search page embeds, which i.js requires."""
    match = _VQD.search(text)
    return match.group(1) if match else None


def duckduckgo_region(context: SearchContext) -> str:
    """DuckDuckGo's region code for the context's market (us-en for en-US), wt-wt (all regions) without one."""
    if not context.market:
        return ALL_REGIONS
    language, country = context.market.split("-")
    return _REGIONS.get(context.market, f"{country.lower()}-{language}")


def search_page_params(term: str, context: SearchContext) -> dict[str, str]:
    """The query parameters of the search page that hands out the vqd token."""
    return {"q": term, "iar": "images", "t": "h_", "kl": duckduckgo_region(context),
            "kp": SEARCH_PAGE_SAFE[context.safe_search]}


def images_params(term: str, vqd: str, context: SearchContext) -> dict[str, str]:
    """The query parameters of the first i.js request."""
    params = {"o": "json", "q": term, "u": "bing", "l": duckduckgo_region(context), "bpia": "1", "vqd": vqd,
              "a": "h_"}
    if context.country:
        params["ct"] = context.country
    safe = IMAGES_SAFE[context.safe_search]
    if safe is not None:
        params["p"] = safe
    return params


def duckduckgo_cookies(context: SearchContext) -> dict[str, str]:
    """The cookies in which DuckDuckGo keeps region (l, ah), language (ad) and safe search (p)."""
    region = duckduckgo_region(context)
    cookies = {"l": region, "ah": region}
    language = context.interface_language
    if language:
        cookies["ad"] = f"{language.split('-')[0]}_{context.country}" if context.country else language.replace("-", "_")
    safe = IMAGES_SAFE[context.safe_search]
    if safe is not None:
        cookies["p"] = safe
    return cookies


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


class DuckDuckGoEngine(HttpEngine):
    """DuckDuckGo Images: `{base}/?q=..` for the token, then `{base}/i.js?o=json&q=..&vqd=..` and its `next`."""

    name = "duckduckgo"
    default_base = DEFAULT_BASE
    sends_accept_language = False  # as SearXNG's duckduckgo_extra: the region and language go in l, ah and ad

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results; follows `next` until the limit, the end, or a page with nothing new."""
        ranker = Ranker(self.name)
        # One session, so one User-Agent and one cookie jar, from the token to the last page: the token is
        # tied to the query and the User-Agent.
        with self.session(duckduckgo_cookies(self.context)) as session:
            text = self.page(session, term, "/", search_page_params(term, self.context))
            vqd = parse_vqd(text)
            if vqd is None:
                if looks_blocked(text):
                    raise blocked(self.name, term)
                raise EngineError(f"{self.name}: markup changed: no vqd token in the search page for '{term}'")
            path, params = "/i.js", images_params(term, vqd, self.context)
            headers = {"Accept": "*/*", "Referer": f"{self.base_url}/"}
            first_page = True
            while len(ranker.results) < limit:
                text = self.page(session, term, path, params, headers=headers)
                hits, following = parse_duckduckgo(text)
                check_page(self.name, term, text, hits, first_page=first_page, empty_answer=_empty_answer(text))
                if not ranker.add(hits, limit) or not following:
                    break
                first_page = False
                path, params = _next_page(following, images_params(term, vqd, self.context))
        return ranker.results


def _next_page(following: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The path of an i.js `next` link, and those of our parameters it lacks (its own values win)."""
    given = parse_qs(urlsplit(following).query, keep_blank_values=True)
    return following, {name: value for name, value in params.items() if name not in given}
