"""Search engines: each turns a term into ranked image results, and knows nothing about files."""

from __future__ import annotations

from ..errors import GimgError
from ..options import DownloadOptions
from ..registry import ENGINES, resolve
from .base import Engine, SearchResult, default_page_delay
from .context import SearchContext
from .record import RequestRecorder

__all__ = ["ENGINES", "Engine", "SearchContext", "SearchResult", "default_page_delay", "make_engine"]


def make_engine(
    options: DownloadOptions, *, page_delay: float | None = None, recorder: RequestRecorder | None = None
) -> Engine:
    """The engine options name, pointed at options.engine_url (its public site when None), in its search context.

    page_delay is the pause between search pages; None means default_page_delay(engine_url). recorder keeps every
    request the engine sends (each engine makes its own when None). Raises GimgError, before any search, for a bad
    market, an unusable urls CSV or a missing browser.
    """
    if "," in options.engine or "," in (options.market or ""):
        raise GimgError(f"one engine in one market at a time, not {options.engine!r} in {options.market!r}: "
                        "gimg.pipeline.run_study_download runs each engine in each market")
    delay = default_page_delay(options.engine_url) if page_delay is None else page_delay
    context = SearchContext(options.market, options.language, options.safe_search)
    return resolve("engine", options.engine)(options, page_delay=delay, context=context, recorder=recorder)
