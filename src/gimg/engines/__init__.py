"""Search engines: each turns a term into ranked image results, and knows nothing about files."""

from __future__ import annotations

from pathlib import Path

from ..errors import GimgError
from .base import Engine, SearchContext, SearchResult, default_page_delay
from .bing import BingEngine
from .duckduckgo import DuckDuckGoEngine
from .google import GoogleEngine
from .record import RequestRecorder
from .urls import UrlsEngine

ENGINES = ("google", "bing", "duckduckgo", "urls")

__all__ = ["ENGINES", "Engine", "SearchResult", "default_page_delay", "make_engine"]


def make_engine(
    name: str,
    *,
    base_url: str | None = None,
    urls_csv: Path | None = None,
    page_delay: float | None = None,
    context: SearchContext | None = None,
    recorder: RequestRecorder | None = None,
) -> Engine:
    """The engine called name, pointed at base_url (its public site when None).

    page_delay is the pause between search pages; None means default_page_delay(base_url). context is the
    market, language and safe search (engine defaults when None); recorder keeps every request the engine
    sends (each engine makes its own when None). Raises GimgError, before any search, for an unknown name or
    an unusable urls CSV.
    """
    delay = default_page_delay(base_url) if page_delay is None else page_delay
    if name == "bing":
        return BingEngine(base_url, page_delay=delay, context=context, recorder=recorder)
    if name == "duckduckgo":
        return DuckDuckGoEngine(base_url, page_delay=delay, context=context, recorder=recorder)
    if name == "google":
        return GoogleEngine(base_url, page_delay=delay, context=context, recorder=recorder)
    if name == "urls":
        return UrlsEngine(urls_csv)
    raise GimgError(f"unknown engine '{name}': choose one of {', '.join(ENGINES)}")
