"""A replayable "engine": the results of each term read from a CSV of term,url (optional rank, source_page, and the
engine and market that found them, as `gimg search` writes)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import EngineError, GimgError, OptionError
from ..options import DownloadOptions, market_code
from .base import SearchResult
from .context import SearchContext
from .record import RequestRecorder, sha256_of

URLS = "urls"
REQUIRED = ("term", "url")
Source = tuple[str, str | None]
"""Who found a list of results: (engine, market); ("urls", None) for a plain list."""


def read_urls(path: Path) -> dict[Source, dict[str, list[SearchResult]]]:
    """Every result list of a urls CSV, by (engine, market) and term, in rank order (file order without ranks).

    Without engine and market columns the whole file is one list, ("urls", None).
    """
    path = Path(path)
    if not path.is_file():
        raise GimgError(f"urls file {path} not found: give --urls a CSV with columns term,url (optional rank)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED if name not in columns]
        if missing:
            raise GimgError(
                f"urls file {path} lacks column(s) {', '.join(missing)}: its header must include term,url "
                "(optional rank, source_page, engine, market)"
            )
        reader.fieldnames = columns
        rows = list(reader)
    lists: dict[Source, dict[str, list[tuple[int, int, str, str]]]] = {}
    seen: set[tuple[Source, str, str]] = set()
    for line, row in enumerate(rows, start=2):
        term, url = (row.get("term") or "").strip(), (row.get("url") or "").strip()
        if not term or not url:
            continue
        source = ((row.get("engine") or "").strip() or URLS, _market(row.get("market"), path, line))
        rank = _rank(row.get("rank"), path, line)
        if (source, term, url) not in seen:  # a repeated URL is one result, as with real engines
            seen.add((source, term, url))
            entry = (rank or 0, line, url, (row.get("source_page") or "").strip())
            lists.setdefault(source, {}).setdefault(term, []).append(entry)
    return {source: {term: _ranked(entries, source[0]) for term, entries in terms.items()}
            for source, terms in lists.items()}


def replayed_sources(path: Path) -> list[Source]:
    """The (engine, market) result lists a urls CSV holds, in the order first listed."""
    return list(read_urls(path))


def _market(value: str | None, path: Path, line: int) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        return market_code(text)
    except OptionError as error:
        raise GimgError(f"urls file {path} line {line}: {error}") from None


def _rank(value: str | None, path: Path, line: int) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise GimgError(f"urls file {path} line {line}: rank '{text}' is not a whole number >= 1: fix or remove it")
    return int(text)


def _ranked(entries: list[tuple[int, int, str, str]], engine: str) -> list[SearchResult]:
    """Keep given ranks (so a replay names files as the original run did); number unranked rows by file order."""
    if all(rank for rank, *_ in entries):
        entries = sorted(entries)
        return [SearchResult(rank, url, page, engine) for rank, _, url, page in entries]
    return [SearchResult(number, url, page, engine) for number, (_, _, url, page) in enumerate(entries, start=1)]


def _label(source: Source) -> str:
    engine, market = source
    return f"{engine} {market}" if market else engine


class UrlsEngine:
    """Replays one result list of a CSV per term: that of engine and market when the CSV names them.

    The results keep the rank, source page and engine name of the list, so a replay of `gimg search`'s CSV
    names its files as a download of the same results would. The file is checked when the engine is made.
    """

    name = URLS
    user_agent = ""  # a replay sends no request

    @classmethod
    def from_options(cls, options: DownloadOptions, *, context: SearchContext | None = None, **_: object) -> UrlsEngine:
        """The engine for options.urls, replaying the list of the context's market when the CSV has several."""
        return cls(options.urls, (None, context.market if context else None))

    def __init__(self, urls_csv: Path | None, wanted: tuple[str | None, str | None] = (None, None)) -> None:
        """wanted: the (engine, market) whose list to replay; None for either means any (there must be one)."""
        if urls_csv is None:
            raise GimgError("--engine urls needs --urls CSV: a file with columns term,url (optional rank)")
        self.path = Path(urls_csv)
        lists = read_urls(self.path)
        self.replayed = _choose(lists, wanted, self.path)
        self.by_term = lists[self.replayed]
        self.context = SearchContext(self.replayed[1])
        self.recorder = RequestRecorder()
        self.source = f"replay of {self.path.resolve()} (sha256 {sha256_of(self.path)}), list {_label(self.replayed)}"

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """The first `limit` rows listed for term."""
        results = self.by_term.get(term)
        if not results:
            raise EngineError(f"urls: no rows for '{term}' in {self.path}: add rows term,url for it")
        return results[:limit]


def _choose(lists: dict[Source, dict], wanted: tuple[str | None, str | None], path: Path) -> Source:
    """The one list of the wanted engine and market (either None: any); a filter the CSV has no column for is
    ignored."""
    engine, market = wanted
    sources = list(lists)
    if not sources:
        raise GimgError(f"urls file {path} has no rows with a term and a url: add rows term,url")
    if any(name != URLS for name, _ in sources) and engine is not None:
        sources = [source for source in sources if source[0] == engine]
    if any(place is not None for _, place in sources) and market is not None:
        sources = [source for source in sources if source[1] == market]
    if len(sources) == 1:
        return sources[0]
    wanted = _label((engine or "any engine", market))
    if not sources:
        raise GimgError(f"urls file {path} has no results of {wanted}: it holds {', '.join(map(_label, lists))}")
    raise GimgError(f"urls file {path} holds several result lists ({', '.join(map(_label, sources))}): replay it "
                    "with `gimg download --engine urls`, which makes one branch of each")
