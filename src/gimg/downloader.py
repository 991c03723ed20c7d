"""The download threads shared by every term: host-aware fetching with retries, validation on worker processes,
each finished result a Record, journaled as it ends."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from .engines import SearchResult
from .fetch import FetchError, Fetcher, FetchOptions, HostQueue, host_of
from .parallel import default_workers
from .validate import MAX_PIXELS, MIN_SIDE
from .validators import InThreads, Job, ProcessPool, Stored, failure_reason

log = logging.getLogger(__name__)
STATUSES = ("downloaded", "duplicate", "rejected", "failed")


@dataclass
class Record:
    """One manifest row (what happened to one search result), plus the perceptual hash of a kept image."""

    rank: int
    url: str
    source_page: str
    engine: str
    time: str = ""
    sha256: str = ""
    status: str = "failed"
    error: str = ""
    file: str = ""
    run: str = ""  # the id of the download run that fetched it (its context record: context/<run>.json)
    phash: str = ""

    @property
    def key(self) -> tuple[int, str]:
        return self.rank, self.url


JOURNAL_COLUMNS = [item.name for item in fields(Record)]


def image_stem(result: SearchResult) -> str:
    """NNNN_<8 hex of sha1(url)>: the rank and URL fix the name, so reruns find earlier files."""
    return f"{result.rank:04d}_{hashlib.sha1(result.url.encode('utf-8')).hexdigest()[:8]}"


@dataclass
class _Task:
    """One result on its way through the download threads."""

    result: SearchResult
    folder: Path
    deliver: Callable[[Record], None]
    record: Record
    attempt: int = 1


@dataclass
class Downloader:
    """The download threads shared by all terms: host-aware scheduling, retries, then validation and atomic
    writes on `processes` worker processes (in the download threads themselves when processes is 1)."""

    per_host: int
    fetch: FetchOptions = field(default_factory=FetchOptions)
    max_pixels: int = MAX_PIXELS
    min_side: int = MIN_SIDE
    processes: int = field(default_factory=default_workers)

    def __enter__(self) -> Downloader:
        self._fetcher = Fetcher(self.fetch, self.per_host)
        self._queue: HostQueue[_Task] = HostQueue(self.per_host)
        if self.processes > 1:
            self._validator: InThreads | ProcessPool = ProcessPool(self.processes, self.max_pixels, self.min_side)
        else:
            self._validator = InThreads(self.max_pixels, self.min_side)
        self._validator.__enter__()  # the workers start while the first bodies are on their way
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.fetch.connections)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._queue.close()
        for thread in self._threads:
            thread.join()
        self._validator.__exit__()
        self._fetcher.__exit__()

    def download(self, results: list[SearchResult], folder: Path, run: str = "") -> Iterator[list[Record]]:
        """Fetch every result into folder; yields the records finished since the last yield (at least one)."""
        finished: queue.Queue[Record] = queue.Queue()
        for result in results:
            record = Record(result.rank, result.url, result.source_page, result.engine, run=run)
            host = host_of(result.url)
            if host is None:
                record.time, record.error = utc_now(), "not an http(s) URL"
                finished.put(record)
            else:
                self._queue.put(host, _Task(result, folder, finished.put, record))
        waiting = len(results)
        while waiting:
            batch = [finished.get()]
            while len(batch) < waiting and not finished.empty():
                batch.append(finished.get())
            waiting -= len(batch)
            yield batch

    def _work(self) -> None:
        attempts = self.fetch.attempts
        while (item := self._queue.take()) is not None:
            host, task = item
            task.record.time = task.record.time or utc_now()
            try:
                data = self._fetcher.get(task.result.url)
            except FetchError as error:
                self._queue.done(host, pause=error.retry_after or 0.0)
                if error.retry_after is not None and task.attempt < attempts:
                    wait = self._fetcher.backoff(task.attempt, error.retry_after)
                    log.debug(f"download: retrying {task.result.url} in {wait:.1f} s after {error} "
                              f"(attempt {task.attempt + 1} of {attempts})")
                    task.attempt += 1
                    self._queue.put(host, task, time.monotonic() + wait)
                    continue
                tries = f" (after {task.attempt} attempts)" if task.attempt > 1 else ""
                task.deliver(replace(task.record, status=error.status, error=f"{error}{tries}"))
                continue
            except Exception as error:  # a worker must never die: the result is failed, the others go on
                self._queue.done(host)
                task.deliver(replace(task.record, status="failed", error=failure_reason(error)))
                continue
            self._queue.done(host)
            job = Job(data, str(task.folder), image_stem(task.result))
            self._validator.submit(job, partial(_deliver_stored, task))


def _deliver_stored(task: _Task, stored: Stored) -> None:
    """Hand on the record of a validated (or quarantined, or failed) body."""
    task.deliver(replace(task.record, **stored._asdict()))


class Journal:
    """The term's append-only record of finished results; each batch is flushed and fsynced before going on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fresh = not path.exists() or path.stat().st_size == 0
        self._handle = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=JOURNAL_COLUMNS, lineterminator="\n")
        if fresh:
            self._writer.writeheader()

    def append(self, records: list[Record]) -> None:
        self._writer.writerows(one_line(asdict(record)) for record in records)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def read_journal(path: Path) -> dict[tuple[int, str], Record]:
    """The complete rows of a journal, by (rank, url); a row cut short by a kill is ignored."""
    if not path.exists():
        return {}
    text = path.read_bytes().decode("utf-8", errors="replace")
    text = text[: text.rfind("\n") + 1]  # a kill mid-write leaves a last line without its newline
    rows = {}
    for row in csv.DictReader(io.StringIO(text)):
        if None in row or None in row.values() or row.get("status") not in STATUSES or not row["rank"].isdigit():
            continue
        record = Record(**{**row, "rank": int(row["rank"])})
        rows[record.key] = record
    return rows


def one_line(row: dict) -> dict:
    """Row values without line breaks: every manifest and journal row stays one line."""
    return {key: _flat(value) if isinstance(value, str) else value for key, value in row.items()}


def _flat(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
