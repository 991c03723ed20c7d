"""Google Images through headless Debian chromium driven by Selenium, read from the DOM the browser builds.

The context goes in `hl` (language), `gl` (country) and `safe` (off or active; moderate is Google's default and
is not sent), the browser's Accept-Language, and the CONSENT cookie that SearXNG's google.py also sets.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from ..errors import EngineError, GimgError
from .base import USER_AGENT, Hit, Ranker, SearchResult, Throttle, blocked, check_page
from .context import SearchContext
from .record import RequestRecord, RequestRecorder, utc_timestamp

DEFAULT_BASE = "https://www.google.com"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
_GOOGLE_HOSTS = ("google.com", "gstatic.com", "googleusercontent.com")
_MAX_STALE_ROUNDS = 3
SAFE = {"off": "off", "moderate": None, "strict": "active"}  # Google's `safe`; its default (blur) is not sent
CONSENT_COOKIE = {"CONSENT": "YES+"}  # so that EU IP addresses get results, not the consent page
_RG_META = re.compile(r"""<div[^>]*class=["']rg_meta["'][^>]*>(.*?)</div>""", re.S)

# Google sets a result's real link (/imgres?imgurl=..&imgrefurl=..) only when the result is pressed or
# focused, so every result whose link is not set yet gets a synthetic mousedown and focus.
_REVEAL = """
const boxes = document.querySelectorAll('[data-lpage], [data-docid]');
for (const box of boxes) {
  for (const link of box.querySelectorAll('a')) {
    if ((link.getAttribute('href') || '').includes('imgres?')) continue;
    link.dispatchEvent(new MouseEvent('mousedown', {bubbles: true, cancelable: true}));
    link.dispatchEvent(new FocusEvent('focus'));
    link.dispatchEvent(new FocusEvent('focusin', {bubbles: true}));
  }
}
return boxes.length;
"""
_COUNT = "return document.querySelectorAll('[data-lpage], [data-docid]').length;"
_SCROLL = "window.scrollTo(0, document.documentElement.scrollHeight);"
_MORE = """
const controls = document.querySelectorAll('input[type=button], input[type=submit], button, [role=button]');
for (const control of controls) {
  const label = control.value || control.innerText || control.getAttribute('aria-label') || '';
  if (/(more results|show more)/i.test(label) && control.offsetParent !== null) { control.click(); return true; }
}
return false;
"""


class _ResultBoxes(HTMLParser):
    """Walks rendered HTML; each element with data-lpage/data-docid (outermost) is one result."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hits: list[Hit] = []
        self._box: dict[str, str] | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if self._box is None:
            if "data-lpage" not in values and "data-docid" not in values:
                return
            self._box = {"page": "", "image": "", "imgref": "", "src": ""}
            self._depth = 0
        box = self._box
        box["page"] = box["page"] or values.get("data-lpage", "")
        if tag == "a" and "imgres?" in values.get("href", ""):
            query = parse_qs(urlsplit(values["href"]).query)
            box["image"] = box["image"] or query.get("imgurl", [""])[0]
            box["imgref"] = box["imgref"] or query.get("imgrefurl", [""])[0]
        if tag == "img" and not box["src"]:
            source = values.get("src") or values.get("data-src", "")
            host = urlsplit(source).hostname or ""
            # A direct link to the image counts; Google's own thumbnails are not the result's image.
            if source.startswith(("http://", "https://")) and not host.endswith(_GOOGLE_HOSTS):
                box["src"] = source
        if tag not in _VOID:
            self._depth += 1
        elif self._depth == 0:
            self._close()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._box is None or tag in _VOID:
            return
        self._depth -= 1
        if self._depth == 0:
            self._close()

    def _close(self) -> None:
        box, self._box = self._box, None
        image = box["image"] or box["src"]
        if image:
            self.hits.append((image, box["imgref"] or box["page"]))


def parse_google_dom(page: str) -> list[Hit]:
    """(image URL, page URL) of each result in Google Images' rendered DOM (outerHTML), in page order."""
    parser = _ResultBoxes()
    parser.feed(page)
    parser.close()
    return parser.hits


def parse_rg_meta(page: str) -> list[Hit]:
    """(image URL, page URL) from the old (2015-2019) `rg_meta` JSON blocks: `ou` is the image, `ru` the page."""
    hits = []
    for block in _RG_META.findall(page):
        try:
            data = json.loads(html.unescape(block))
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("ou"):
            hits.append((str(data["ou"]), str(data.get("ru") or "")))
    return hits


def parse_google(page: str) -> list[Hit]:
    """Results of a Google Images page: today's DOM, or else the old rg_meta format."""
    return parse_google_dom(page) or parse_rg_meta(page)


def google_params(context: SearchContext) -> dict[str, str]:
    """Google's parameters for a context: hl (interface language), gl (country), safe."""
    params = {}
    if context.interface_language:
        params["hl"] = context.interface_language
    if context.country:
        params["gl"] = context.country.lower()
    if SAFE[context.safe_search]:
        params["safe"] = str(SAFE[context.safe_search])
    return params


class GoogleEngine:
    """Google Images in headless chromium: opens `{base}/search?q=..&udm=2`, scrolls, and reads the DOM."""

    name = "google"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        page_delay: float = 1.0,
        scroll_wait: float = 3.0,
        driver_path: Path = CHROMEDRIVER,
        browser_path: Path = CHROMIUM,
        context: SearchContext | None = None,
        recorder: RequestRecorder | None = None,
    ) -> None:
        for path, package in ((driver_path, "chromium-driver"), (browser_path, "chromium")):
            if not Path(path).exists():
                raise GimgError(f"--engine google needs {path}: install it (apt-get install {package})")
        self.base_url = (base_url or DEFAULT_BASE).rstrip("/")
        self.throttle = Throttle(page_delay)
        self.scroll_wait = scroll_wait
        self.driver_path = Path(driver_path)
        self.browser_path = Path(browser_path)
        self.context = context or SearchContext()
        self.recorder = recorder or RequestRecorder()
        self.user_agent = ""  # the browser's own, with gimg's appended; known once a browser has started

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results: scrolls (and presses "more results") until enough, or until no more appear."""
        from selenium.common.exceptions import WebDriverException

        params = {"q": term, "udm": "2", **google_params(self.context)}
        url = f"{self.base_url}/search?{urlencode(params)}"
        with tempfile.TemporaryDirectory(prefix="gimg-chromium-", ignore_cleanup_errors=True) as profile:
            try:
                driver = self._start(profile)
            except WebDriverException as error:
                raise EngineError(f"google: cannot start {self.browser_path}: {_first_line(error)}") from None
            try:
                self.throttle.wait()
                started = time.time()
                try:
                    driver.get(url)
                finally:
                    self.recorder.add(RequestRecord(
                        engine=self.name, term=term, url=url, params=tuple(params.items()),
                        user_agent=self.user_agent, accept_language=self.context.accept_language,
                        cookie_names=tuple(CONSENT_COOKIE), started=utc_timestamp(started),
                        seconds=round(time.time() - started, 4),
                    ))
                return self._collect(driver, term, limit)
            except WebDriverException as error:
                raise EngineError(f"google: browser failed on '{term}': {_first_line(error)}") from None
            finally:
                driver.quit()

    def _start(self, profile: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = str(self.browser_path)
        for argument in (*BROWSER_ARGUMENTS, f"--user-data-dir={profile}"):
            options.add_argument(argument)
        # An explicit driver path means Selenium Manager never runs (it would go online).
        driver = webdriver.Chrome(service=Service(executable_path=str(self.driver_path)), options=options)
        driver.set_page_load_timeout(60)
        agent = driver.execute_script("return navigator.userAgent;")
        self.user_agent = f"{agent} {USER_AGENT}"
        override = {"userAgent": self.user_agent}
        if self.context.accept_language:  # chromium takes the bare tags and adds the q-values itself
            override["acceptLanguage"] = ",".join(tag.split(";")[0] for tag in self.context.accept_language.split(","))
        driver.execute_cdp_cmd("Network.setUserAgentOverride", override)
        for name, value in CONSENT_COOKIE.items():
            driver.execute_cdp_cmd("Network.setCookie", {"name": name, "value": value, "url": self.base_url})
        return driver

    def _collect(self, driver, term: str, limit: int) -> list[SearchResult]:
        landed = urlsplit(driver.current_url)
        if "/sorry/" in landed.path or (landed.hostname or "").startswith("consent."):
            raise blocked(self.name, term)
        found, stale = 0, 0
        while True:
            count = driver.execute_script(_REVEAL)
            page = driver.execute_script("return document.documentElement.outerHTML;")
            hits = parse_google(page)
            unique = len({image for image, _ in hits})
            stale, found = (stale + 1 if unique <= found else 0), unique
            # Stop at the limit, or when scrolling keeps adding boxes from which no result can be read.
            if found >= limit or stale >= _MAX_STALE_ROUNDS:
                break
            driver.execute_script(_SCROLL)
            if self._grew(driver, count):
                continue
            if not (driver.execute_script(_MORE) and self._grew(driver, count)):
                break
        check_page(self.name, term, page, hits, first_page=True)
        ranker = Ranker(self.name)
        ranker.add(hits, limit)
        return ranker.results

    def _grew(self, driver, count: int) -> bool:
        """Wait up to scroll_wait seconds for more results than `count` to appear."""
        deadline = time.monotonic() + self.scroll_wait
        while time.monotonic() < deadline:
            if driver.execute_script(_COUNT) > count:
                return True
            time.sleep(0.1)
        return False


def _first_line(error: Exception) -> str:
    text = getattr(error, "msg", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
