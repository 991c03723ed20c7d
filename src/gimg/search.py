"""Search only: each term's ranked results from every engine and market of a run, without downloading, in one
CSV (OUT/searches/<run id>.csv) that `gimg download --engine urls --urls FILE` replays exactly: same branches,
same ranks, so the same file names. Each engine's requests go to a context record beside it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from .design import run_sources
from .engines import Engine, SearchResult, make_engine
from .engines.record import Run, save_context_record
from .engines.urls import URLS
from .errors import EngineError, GimgError
from .layout import Layout, read_terms, write_csv
from .options import DownloadOptions, ExecutionOptions
from .outcome import TermOutcome
from .parallel import default_workers

SEARCH_COLUMNS = ["term", "rank", "url", "source_page", "engine", "market", "run"]


@dataclass(frozen=True)
class SearchRun:
    """What a search run wrote (the CSV), its run, and each engine[_market]'s outcome per term."""

    path: Path
    run: Run
    outcomes: dict[str, list[TermOutcome]]


def _search_one(engine: Engine, term: str, limit: int) -> tuple[list[SearchResult], TermOutcome]:
    """One term's results and outcome; an engine failure fails only this term."""
    try:
        results = engine.search(term, limit)
    except EngineError as error:
        return [], TermOutcome(term, "failed", str(error))
    if not results:
        return [], TermOutcome(term, "failed", "the engine gave no results")
    return results, TermOutcome(term, "done", f"{len(results)} results")


def run_search(
    terms: Path | list[str],
    out: Path,
    options: DownloadOptions = DownloadOptions(),
    execution: ExecutionOptions = ExecutionOptions(),
) -> SearchRun:
    """Search terms (a terms file or a list) with every engine in every market of options, up to options.limit
    results each; write OUT/searches/<run id>.csv and one context record per engine and market."""
    if URLS in options.engine.split(","):
        raise GimgError("gimg search asks search engines; --engine urls replays a list that exists already")
    names = read_terms(terms) if isinstance(terms, Path) else list(terms)
    run = Run.start(terms if isinstance(terms, Path) else names)
    sources = run_sources(options)
    engines = [make_engine(replace(options, engine=name, market=market))
               for name, market in sources]  # every engine made, and so checked, before any search
    layout = Layout(out)
    rows, outcomes = [], {}
    workers = max(1, min(execution.workers or default_workers(), len(names)))
    for (name, market), engine in zip(sources, engines):
        label = f"{name}_{market}" if market else name
        with ThreadPoolExecutor(workers) as pool:
            found = list(pool.map(lambda term: _search_one(engine, term, options.limit), names))
        for term, (results, _) in zip(names, found):
            rows += [{"term": term, "rank": result.rank, "url": result.url, "source_page": result.source_page,
                      "engine": result.engine, "market": market or "", "run": run.id} for result in results]
        outcomes[label] = [outcome for _, outcome in found]
        save_context_record(layout.search_context(run.id, label), engine, run)
    path = layout.search_list(run.id)
    write_csv(path, rows, SEARCH_COLUMNS)
    return SearchRun(path, run, outcomes)
