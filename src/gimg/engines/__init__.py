"""Search engines: each turns a term into ranked image results, and knows nothing about files."""

from __future__ import annotations

from ..options import DownloadOptions
from ..registry import ENGINES, resolve
from .base import Engine, SearchResult, default_page_delay

__all__ = ["ENGINES", "Engine", "SearchResult", "default_page_delay", "make_engine"]


def make_engine(options: DownloadOptions, *, page_delay: float | None = None) -> Engine:
    """The engine options name, pointed at options.engine_url (its public site when None).

    page_delay is the pause between search pages; None means default_page_delay(engine_url). Raises
    GimgError, before any search, for an unusable urls CSV or a missing browser.
    """
    delay = default_page_delay(options.engine_url) if page_delay is None else page_delay
    return resolve("engine", options.engine).from_options(options, page_delay=delay)
