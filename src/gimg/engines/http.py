"""What the engines that ask over HTTP share (Bing, DuckDuckGo, Google's basic page): where they ask, how
politely, in which context, as whom, and the record of what they sent."""

from __future__ import annotations

import requests

from ..options import DownloadOptions
from .base import USER_AGENT, Throttle, get_page, new_session
from .context import SearchContext
from .record import RequestRecorder


class HttpEngine:
    """An engine that fetches result pages over HTTP; subclasses set name and default_base, and search."""

    name: str
    default_base: str
    default_user_agent: str = USER_AGENT
    sends_accept_language: bool = True

    def __init__(
        self,
        base_url: str | None = None,
        *,
        page_delay: float = 1.0,
        context: SearchContext | None = None,
        recorder: RequestRecorder | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.base_url = (base_url or self.default_base).rstrip("/")
        self.throttle = Throttle(page_delay)
        self.context = context or SearchContext()
        self.recorder = recorder or RequestRecorder()
        self.user_agent = user_agent or self.default_user_agent

    @classmethod
    def from_options(
        cls, options: DownloadOptions, *, page_delay: float, context: SearchContext, recorder: RequestRecorder | None
    ) -> HttpEngine:
        """The engine at options.engine_url, in context."""
        return cls(options.engine_url, page_delay=page_delay, context=context, recorder=recorder)

    def session(self, cookies: dict[str, str]) -> requests.Session:
        """A session with the engine's User-Agent, its context's Accept-Language (if it sends one) and cookies."""
        session = new_session(self.user_agent, self.context.accept_language if self.sends_accept_language else None)
        session.cookies.update(cookies)
        return session

    def page(self, session: requests.Session, term: str, path: str, params: dict | None, **options) -> str:
        """The text of the page at path on the engine's host, after the pause between pages; retried, recorded."""
        self.throttle.wait()
        url = f"{self.base_url}/{path.lstrip('/')}"
        return get_page(
            session, self.name, term, url, params, retry_wait=self.throttle.delay, recorder=self.recorder, **options
        ).text
