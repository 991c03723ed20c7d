"""What every search engine shares: the result record, polite HTTP, and loud failure on blocked or changed pages."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import requests

from .. import __version__
from ..errors import EngineError

if TYPE_CHECKING:
    from .record import RequestRecorder

USER_AGENT = f"gimg/{__version__} (+research; image-search audit)"
TIMEOUT = (10, 30)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

# Lower-case fragments of consent walls, captchas and rate-limit pages (Google's /sorry/, Bing's and
# DuckDuckGo's bot challenges). They are only looked for on pages that gave no results.
_BLOCKED_MARKERS = (
    "captcha",
    "unusual traffic",
    "before you continue",
    "consent.google.",
    "/sorry/index",
    "are you a robot",
    "verify you are human",
    "anomaly-modal",
    "challenge-form",
)

# Lower-case fragments of an engine's own "nothing found" answer: a first page that says so is zero results,
# not a changed layout. From Bing's web and image result pages (class b_no) and DuckDuckGo's; not every
# wording of every market is known, so an unrecognised empty page still fails as "markup changed".
_NO_RESULTS_MARKERS = (
    'class="b_no"',
    "there are no results for",
    "we didn't find any results",
    "we did not find any results",
    "no results found for",
    "no image results",
    "did not match any",
)
PAGE_ATTEMPTS = 3
MAX_PAGE_RETRY_AFTER = 30.0

Hit = tuple[str, str]
"""One parsed result: (image URL, page the image is on)."""

@dataclass(frozen=True)
class SearchResult:
    """One image result of one search: its rank (from 1), the image URL, the page it is on, the engine."""

    rank: int
    url: str
    source_page: str
    engine: str


class Engine(Protocol):
    """A search engine: turns a term into ranked image results, and knows nothing about files."""

    name: str

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results for term, best first; raises EngineError when the engine cannot answer."""
        ...


def default_page_delay(base_url: str | None) -> float:
    """Seconds between two search-page requests: 1 s for a real engine, 0 for a server on this machine."""
    # Politeness towards real engines: at least 1 s between result pages. A local test or demo
    # server (127.0.0.1 / localhost) needs no such courtesy, and tests must stay fast.
    host = urlsplit(base_url).hostname if base_url else None
    return 0.0 if host in LOCAL_HOSTS else 1.0


class Throttle:
    """Keeps at least `delay` seconds between calls to wait(), across threads."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            pause = self._next - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._next = time.monotonic() + self.delay


def new_session(user_agent: str = USER_AGENT, accept_language: str | None = None) -> requests.Session:
    """An HTTP session that says who it is (and, when given, which languages it wants)."""
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    if accept_language:
        session.headers["Accept-Language"] = accept_language
    return session


def get_page(
    session: requests.Session,
    engine: str,
    term: str,
    url: str,
    params: dict | None = None,
    *,
    retry_wait: float = 1.0,
    recorder: RequestRecorder | None = None,
    **kwargs,
) -> requests.Response:
    """GET one search page, retrying timeouts, resets, 5xx and 429 (honouring Retry-After) a few times.

    Network errors, HTTP errors and consent or "sorry" redirects that remain become EngineError. retry_wait is
    the first backoff (doubling after); 0 for a server on this machine. recorder, when given, keeps every
    request sent (redirects and retries included) with its outcome.
    """
    for attempt in range(1, PAGE_ATTEMPTS + 1):
        last = attempt == PAGE_ATTEMPTS
        backoff = retry_wait * 2 ** (attempt - 1)
        started = time.time()
        try:
            response = session.get(url, params=params, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as error:
            if recorder is not None:
                recorder.add_failure(engine, term, session, url, params, kwargs, started, type(error).__name__)
            if last or not isinstance(error, (requests.ConnectionError, requests.Timeout)):
                raise EngineError(f"{engine}: cannot reach {url}: {type(error).__name__}") from None
            time.sleep(backoff)
            continue
        if recorder is not None:
            recorder.add_response(engine, term, response, started)
        landed = urlsplit(response.url)
        if (landed.hostname or "").startswith("consent.") or landed.path.startswith("/sorry/"):
            raise blocked(engine, term)
        if response.status_code < 400:
            return response
        if looks_blocked(response.text):
            raise blocked(engine, term)
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if response.status_code in (429, 500, 502, 503, 504) and not last:
            if wait is not None and wait > MAX_PAGE_RETRY_AFTER:
                raise EngineError(
                    f"{engine}: rate limited (HTTP {response.status_code}, Retry-After {wait:g} s) for '{term}': "
                    "rerun later"
                )
            time.sleep(backoff if wait is None else wait)
            continue
        raise EngineError(f"{engine}: HTTP {response.status_code} from {url} for '{term}'")
    raise AssertionError("unreachable: the last attempt returns or raises")  # for type checkers


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (a number of seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def says_no_results(text: str) -> bool:
    """True when a page is the engine's own "no results" answer."""
    lower = text.lower()
    return any(marker in lower for marker in _NO_RESULTS_MARKERS)


def looks_blocked(text: str) -> bool:
    """True when a page looks like a consent wall, a captcha or an "unusual traffic" notice."""
    lower = text.lower()
    return any(marker in lower for marker in _BLOCKED_MARKERS)


def blocked(engine: str, term: str) -> EngineError:
    return EngineError(f"{engine}: blocked by a captcha/consent page for '{term}'")


def markup_changed(engine: str) -> EngineError:
    return EngineError(f"{engine}: markup changed: 0 results parsed from a non-empty page")


def check_page(
    engine: str, term: str, text: str, hits: list[Hit], *, first_page: bool, empty_answer: bool = False
) -> None:
    """Raise when a page that gave no results is a block page, or is a non-empty first page (a stale parser).

    An empty later page is simply the end of the results, and so is a first page that is the engine's own
    "no results" answer (empty_answer: the caller recognised an empty result list).
    """
    if hits:
        return
    if looks_blocked(text):
        raise blocked(engine, term)
    if first_page and text.strip() and not (empty_answer or says_no_results(text)):
        raise markup_changed(engine)


class Ranker:
    """Numbers hits from 1 in the order first seen, dropping repeated image URLs."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.results: list[SearchResult] = []
        self._seen: set[str] = set()

    def add(self, hits: Iterable[Hit], limit: int) -> int:
        """Add new hits up to limit; return how many were new."""
        added = 0
        for url, page in hits:
            if len(self.results) >= limit:
                break
            if not url or url in self._seen:
                continue
            self._seen.add(url)
            self.results.append(SearchResult(len(self.results) + 1, url, page, self.engine))
            added += 1
        return added
