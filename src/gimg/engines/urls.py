"""A replayable "engine": the results of each term read from a CSV of term,url (optional rank, source_page)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import EngineError, GimgError
from ..options import DownloadOptions
from .base import SearchResult

REQUIRED = ("term", "url")


def read_urls(path: Path) -> dict[str, list[SearchResult]]:
    """Every term's results from a urls CSV, in rank order (file order where there is no rank)."""
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
                "(optional rank, source_page)"
            )
        reader.fieldnames = columns
        rows = list(reader)
    by_term: dict[str, list[tuple[int, int, str, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for line, row in enumerate(rows, start=2):
        term, url = (row.get("term") or "").strip(), (row.get("url") or "").strip()
        if not term or not url:
            continue
        rank = _rank(row.get("rank"), path, line)
        if (term, url) not in seen:  # a repeated URL is one result, as with real engines
            seen.add((term, url))
            by_term.setdefault(term, []).append((rank or 0, line, url, (row.get("source_page") or "").strip()))
    return {term: _ranked(entries) for term, entries in by_term.items()}


def _rank(value: str | None, path: Path, line: int) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise GimgError(f"urls file {path} line {line}: rank '{text}' is not a whole number >= 1: fix or remove it")
    return int(text)


def _ranked(entries: list[tuple[int, int, str, str]]) -> list[SearchResult]:
    """Keep given ranks (so a replay names files as the original run did); number unranked rows by file order."""
    if all(rank for rank, *_ in entries):
        entries = sorted(entries)
        return [SearchResult(rank, url, page, "urls") for rank, _, url, page in entries]
    return [SearchResult(number, url, page, "urls") for number, (_, _, url, page) in enumerate(entries, start=1)]


class UrlsEngine:
    """Replays the results listed for each term in a CSV; the file is checked when the engine is made."""

    name = "urls"

    @classmethod
    def from_options(cls, options: DownloadOptions, **_: object) -> UrlsEngine:
        """The engine for options.urls; a replay has no search context, pauses or requests to record."""
        return cls(options.urls)

    def __init__(self, urls_csv: Path | None) -> None:
        if urls_csv is None:
            raise GimgError("--engine urls needs --urls CSV: a file with columns term,url (optional rank)")
        self.path = Path(urls_csv)
        self.by_term = read_urls(self.path)

    def search(self, term: str, limit: int) -> list[SearchResult]:
        """The first `limit` rows listed for term."""
        results = self.by_term.get(term)
        if not results:
            raise EngineError(f"urls: no rows for '{term}' in {self.path}: add rows term,url for it")
        return results[:limit]
