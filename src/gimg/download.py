"""Download stage: search each term, fetch and validate every result, journal each one, write the manifest last."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections import Counter
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .downloader import STATUSES, Downloader, Journal, Record, image_stem, one_line, read_journal
from .engines import Engine, SearchResult, make_engine
from .engines.record import Run, save_context_record
from .errors import EngineError
from .fetch import FetchOptions
from .layout import (
    DOWNLOAD_CLAIM, DOWNLOAD_SUMMARY_CLAIM, NEAR_DUPLICATES, QUARANTINE, Layout, atomic_path, write_csv,
)
from .options import DownloadOptions, ExecutionOptions
from .outcome import TermOutcome
from .parallel import default_workers
from .stageclaims import StageClaims, claim_each
from .validate import MAX_PIXELS, MIN_SIDE, perceptual_hash

log = logging.getLogger(__name__)
COLUMNS = ["rank", "url", "source_page", "engine", "time", "sha256", "status", "error", "file", "run"]
SUMMARY_COLUMNS = ["term", "results", *STATUSES, "success_share", "low_yield", "most_common_problem"]
NEAR_COLUMNS = ["file", "near", "distance"]
NEAR_BITS = 6  # phash Hamming distance at or below which two kept images are reported as near duplicates
_KEPT_NAME = re.compile(r"\d{4,}_[0-9a-f]{8}\.jpg")
_RETRIES = re.compile(r" \(after \d+ attempts\)$")


def download_term(term: str, layout: Layout, engine: Engine, options: DownloadOptions,
                  downloader: Downloader, run: str = "") -> TermOutcome:
    """Search one term (or resume it) and download its results; an engine failure fails only this term.

    A term of which nothing could be downloaded fails, with its most common problem, and leaves no manifest,
    so that a rerun tries it again. A term with a manifest is skipped, or with options.retry_failed retried.
    """
    if layout.manifest(term).exists():
        if options.retry_failed:
            return retry_term(term, layout, downloader, run)
        return TermOutcome(term, "skipped", "manifest.csv exists")
    folder = layout.downloaded(term)
    try:
        results = _search(term, layout, engine, options.limit)
    except EngineError as error:
        return TermOutcome(term, "failed", str(error))
    journaled = read_journal(layout.journal(term))
    records, todo = [], []
    for result in results:
        done = journaled.get((result.rank, result.url))
        if done is not None and _still_on_disk(done, folder):
            records.append(done)
        else:
            todo.append(result)
    resumed = len(records)
    journal = Journal(layout.journal(term))
    try:
        reused = [_from_disk(result, folder, run) for result in todo]
        found = [record for record in reused if record is not None]
        journal.append(found)
        records += found
        todo = [result for result, record in zip(todo, reused) if record is None]
        progress = tqdm(total=len(results), initial=len(records), desc=term[:30], unit="image", leave=False,
                        disable=None)
        for batch in downloader.download(todo, folder, run):
            journal.append(batch)
            records += batch
            progress.update(len(batch))
        progress.close()
    finally:
        journal.close()
    if not any(record.status == "downloaded" for record in records):
        layout.journal(term).unlink(missing_ok=True)
        problem = most_common_problem(records) if records else "the engine gave no results"
        return TermOutcome(term, "failed", f"nothing downloaded: {problem}; rerun to try again")
    detail = _finish(layout, term, records, len(results), options.limit, resumed)
    share = success_share(records)
    if share < options.min_success:
        log.warning(f"download: {term}: only {share:.0%} of {len(records)} results downloaded "
                    f"(below --min-success {options.min_success:g}); most common problem: {most_common_problem(records)}")
    return TermOutcome(term, "done", detail)


def success_share(records: list[Record]) -> float:
    """The share of results fetched as images: downloaded, or the same bytes as another result (duplicate)."""
    return sum(record.status in ("downloaded", "duplicate") for record in records) / max(len(records), 1)


def most_common_problem(records: list[Record]) -> str:
    """The most frequent reason a result was not kept, as "N of M <status>: <reason>" ("none" when all were)."""
    problems = Counter((record.status, _RETRIES.sub("", record.error)) for record in records
                       if record.status in ("rejected", "failed"))
    if not problems:
        return "none"
    (status, reason), count = problems.most_common(1)[0]
    return f"{count} of {len(records)} {status}: {reason}"


def run_download(
    terms: list[str],
    out: Path,
    options: DownloadOptions = DownloadOptions(),
    execution: ExecutionOptions = ExecutionOptions(),
    *,
    fetch: FetchOptions = FetchOptions(),
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    engine: Engine | None = None,
    run: Run | None = None,
) -> list[TermOutcome]:
    """Download up to options.limit images per term into OUT/Downloaded_images/<term>/, resuming unfinished terms.

    execution.workers bounds the terms searched at once and sets the validation processes (1: validation runs
    in the download threads); options.max_per_host the downloads in flight per host, fetch (timeouts, retries,
    connections in all) how they behave on the network. engine answers the searches (default: make_engine(options));
    run names this run in the manifests (default: a run starting now). Writes download_summary.csv, one row per
    downloaded term, last, and what the engine was asked to context/<run id>.json as each term ends.
    """
    # Checked before any work: an unusable urls CSV raises GimgError here. The pause between search pages
    # defaults to 1 s, or 0 when engine_url is on 127.0.0.1/localhost.
    searcher = engine or make_engine(options)
    terms = list(terms)
    run = run or Run.start(terms)
    layout = Layout(out)
    layout.remember_terms(terms, execution.stale_after)
    concurrent_terms = max(1, min(execution.workers or default_workers(), len(terms)))
    downloader = Downloader(options.max_per_host, fetch, max_pixels, min_side, execution.workers or default_workers())

    def job(term: str) -> TermOutcome:
        outcome = download_term(term, layout, searcher, options, downloader, run.id)
        if outcome.status != "skipped":  # a run that only skipped asked the engine nothing
            save_context_record(layout.context_record(run.id), searcher, run)
        return outcome

    def is_done(term: str) -> bool:
        return layout.manifest(term).exists() and not options.retry_failed

    # Each term is claimed on the thread that downloads it, so that processes on several nodes split the terms.
    already = None if options.retry_failed else "manifest.csv exists"
    todo = sum(not is_done(term) for term in terms)
    with downloader, tqdm(total=todo, desc="download", unit="term", disable=None) as progress:
        def do_term(term: str) -> TermOutcome:
            outcome = job(term)
            progress.update()
            return outcome

        outcomes = claim_each(StageClaims(out, DOWNLOAD_CLAIM, execution), terms, do_term, is_done=is_done,
                              already=already, workers=concurrent_terms,
                              notify=lambda line: log.info(f"download: {line}"))
    if any(outcome.status not in ("skipped", "busy") for outcome in outcomes):
        save_context_record(layout.context_record(run.id), searcher, run)  # the last word, whichever term ended last
    if any(outcome.status == "done" for outcome in outcomes) or not layout.download_summary.exists():
        with StageClaims(out, DOWNLOAD_SUMMARY_CLAIM, execution).wait_for(None, poll=0.1):
            write_download_summary(layout, options)  # from every manifest: the last writer's file holds every term
    return outcomes


def write_download_summary(layout: Layout, options: DownloadOptions) -> None:
    """download_summary.csv: per term with a manifest, its counts, success share and low-yield flag."""
    rows = []
    for term in layout.terms_with("manifest"):
        records = read_manifest(layout.manifest(term))
        counts = Counter(record.status for record in records)
        share = success_share(records)
        rows.append({"term": term, "results": len(records), **{status: counts[status] for status in STATUSES},
                     "success_share": round(share, 4), "low_yield": share < options.min_success,
                     "most_common_problem": most_common_problem(records)})
    write_csv(layout.download_summary, rows, SUMMARY_COLUMNS)


def read_manifest(path: Path) -> list[Record]:
    """The rows of a term's manifest as records (a manifest written before the run column has run "")."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [Record(**{**row, "rank": int(row["rank"])}) for row in csv.DictReader(handle)]


def retry_term(term: str, layout: Layout, downloader: Downloader, run: str) -> TermOutcome:
    """Fetch again the results of a term's manifest whose status is failed, rewrite the manifest, and say what changed.

    Rows of a killed retry are taken from the journal. Kept images get their perceptual hash back from their
    files, so near duplicates are found again among all of them.
    """
    folder = layout.downloaded(term)
    before = read_manifest(layout.manifest(term))
    failed = [record for record in before if record.status == "failed"]
    if not failed:
        return TermOutcome(term, "skipped", "no failed results to retry")
    journaled = read_journal(layout.journal(term))
    retried = [journaled[r.key] for r in failed if r.key in journaled and _still_on_disk(journaled[r.key], folder)]
    done = {record.key for record in retried}
    todo = [SearchResult(r.rank, r.url, r.source_page, r.engine) for r in failed if r.key not in done]
    journal = Journal(layout.journal(term))
    try:
        for batch in downloader.download(todo, folder, run):
            journal.append(batch)
            retried += batch
    finally:
        journal.close()
    kept = [_rehashed(record, folder) for record in before if record.status != "failed"]
    records = kept + retried
    _finish(layout, term, records, len(records), len(records), 0)
    after = {record.key: record.status for record in records}
    counts = Counter(after[record.key] for record in failed)
    changed = sum(after[record.key] != record.status for record in before if record.status != "failed")
    detail = f"retried {len(failed)} failed: " + ", ".join(
        f"{counts[status]} {'still failed' if status == 'failed' else status}" for status in STATUSES if counts[status])
    return TermOutcome(term, "done", detail + (f"; {changed} earlier rows changed status" if changed else ""))


def _rehashed(record: Record, folder: Path) -> Record:
    """A manifest row of a kept image with its perceptual hash (which the manifest does not keep) from its file."""
    if record.status != "downloaded":
        return record
    on_disk = _from_disk(SearchResult(record.rank, record.url, record.source_page, record.engine), folder, record.run)
    return replace(record, phash=on_disk.phash) if on_disk else record


def _search(term: str, layout: Layout, engine: Engine, limit: int) -> list[SearchResult]:
    """The term's results: those saved by an interrupted run when they cover limit, else a new search (saved)."""
    saved_path = layout.search_record(term)
    if saved_path.exists():
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        if saved["limit"] >= limit or len(saved["results"]) < saved["limit"]:
            return [SearchResult(*row) for row in saved["results"]][:limit]
    results = engine.search(term, limit)
    saved_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [[r.rank, r.url, r.source_page, r.engine] for r in results]
    with atomic_path(saved_path) as temporary:
        temporary.write_text(json.dumps({"limit": limit, "results": rows}), encoding="utf-8")
    return results


def _still_on_disk(record: Record, folder: Path) -> bool:
    """A journaled result counts only if the file it names is still there, byte for byte."""
    if not record.file or record.status == "duplicate":
        return record.status != "downloaded"
    path = folder / record.file
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256


def _from_disk(result: SearchResult, folder: Path, run: str = "") -> Record | None:
    """The record of a kept image whose journal row was lost (it was written, then the run was killed)."""
    path = folder / f"{image_stem(result)}.jpg"
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            phash = perceptual_hash(image.convert("RGB"))
    except Exception:  # an unreadable leftover is fetched again (and overwritten)
        return None
    fetched = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    return Record(result.rank, result.url, result.source_page, result.engine, fetched,
                  hashlib.sha256(data).hexdigest(), "downloaded", "", path.name, run, phash)


def mark_duplicates(records: list[Record], folder: Path) -> None:
    """In rank order, keep the first file of each sha256; later copies become `duplicate` and their file goes."""
    first: dict[str, str] = {}
    for record in sorted(records, key=lambda record: record.key):
        if record.status != "downloaded":
            continue
        original = first.setdefault(record.sha256, record.file)
        if original != record.file:
            (folder / record.file).unlink(missing_ok=True)
            record.status, record.error, record.file = "duplicate", f"same image as {original}", ""


def near_duplicates(records: list[Record]) -> list[dict]:
    """Pairs of kept images whose perceptual hashes differ in at most NEAR_BITS bits (later file first)."""
    kept = sorted((r for r in records if r.status == "downloaded" and r.phash), key=lambda record: record.key)
    hashes = np.array([int(record.phash, 16) for record in kept], dtype=np.uint64)
    pairs = []
    for index in range(1, len(kept)):
        distances = np.bitwise_count(hashes[:index] ^ hashes[index])
        for earlier in np.flatnonzero(distances <= NEAR_BITS):
            pairs.append({"file": kept[index].file, "near": kept[earlier].file, "distance": int(distances[earlier])})
    return pairs


def _finish(layout: Layout, term: str, records: list[Record], found: int, limit: int, resumed: int) -> str:
    """Mark duplicates, report near duplicates, drop files no row names, write the manifest last."""
    folder = layout.downloaded(term)
    mark_duplicates(records, folder)
    records.sort(key=lambda record: record.key)
    near = near_duplicates(records)
    if near:
        write_csv(layout.near_duplicates(term), near, NEAR_COLUMNS)
    else:
        layout.near_duplicates(term).unlink(missing_ok=True)
    _remove_strays(folder, {record.file for record in records if record.file})
    write_csv(layout.manifest(term), [one_line(asdict(record)) for record in records], COLUMNS)
    layout.journal(term).unlink(missing_ok=True)
    layout.search_record(term).unlink(missing_ok=True)
    return _summary(records, found, limit, resumed, len(near))


def _remove_strays(folder: Path, named: set[str]) -> None:
    """Delete temporary files and images of earlier result lists that no manifest row names."""
    for path in [*folder.glob(".*.tmp"), *folder.glob(f"{QUARANTINE}/.*.tmp")]:
        path.unlink(missing_ok=True)
    for path in folder.glob("*.jpg"):
        if _KEPT_NAME.fullmatch(path.name) and path.name not in named:
            path.unlink()
    for path in folder.glob(f"{QUARANTINE}/*"):
        if f"{QUARANTINE}/{path.name}" not in named:
            path.unlink()


def _summary(records: list[Record], found: int, limit: int, resumed: int, near: int) -> str:
    counts = {status: 0 for status in STATUSES}
    for record in records:
        counts[record.status] += 1
    detail = ", ".join(f"{count} {status}" for status, count in counts.items())
    if near:
        detail += f"; {near} near-duplicate pairs in {NEAR_DUPLICATES}"
    if resumed:
        detail += f"; resumed: {resumed} results were already done"
    if found < limit:
        detail += f"; {found} of {limit} requested: the engine gave no more"
    return detail


