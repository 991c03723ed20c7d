"""The one place that fans work over this machine's processes (the local executor's engine)."""

from __future__ import annotations

import multiprocessing
import os
import sys
from functools import partial
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")

# OPENCV_FOR_THREADS_NUM is OpenCV's default for cv2.setNumThreads, read when cv2 is first imported.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "OPENCV_FOR_THREADS_NUM",
)


def default_workers() -> int:
    """The number of CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def single_threaded() -> None:
    """Each worker owns one core: native libraries must not start threads of their own."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = "1"
    opencv = sys.modules.get("cv2")
    if opencv is not None:  # imported already, by the parent's main module that spawn re-imports here
        opencv.setNumThreads(1)


def guided_chunks(count: int, workers: int, largest: int) -> list[int]:
    """Sizes of consecutive chunks of count items: up to largest, shrinking near the end so workers finish together.

    Each chunk holds a 1/(4 x workers) share of the items still unassigned (OpenMP's guided schedule), so
    the last chunks hold one item and no worker waits long for another's last chunk.
    """
    sizes = []
    while count > 0:
        sizes.append(max(1, min(largest, count // (4 * max(workers, 1)))))
        count -= sizes[-1]
    return sizes


def _apply(function: Callable[[Item], Result], chunk: list[Item]) -> list[Result]:
    return [function(item) for item in chunk]


def imap(
    function: Callable[[Item], Result],
    items: Iterable[Item],
    *,
    workers: int,
    desc: str,
    total: int | None = None,
    chunksize: int = 1,
) -> Iterator[Result]:
    """Apply function to every item over `workers` processes, yielding results as they finish.

    The function must be a module-level callable (or a picklable object) that never raises: failures
    are results with a status. Items go out in guided_chunks of at most chunksize items. With one worker
    the work runs in this process, which keeps tracebacks and debuggers simple.
    """
    items = list(items)
    total = len(items) if total is None else total
    bar = {"total": total, "desc": desc, "unit": "item", "leave": False, "disable": None}  # no bars off a terminal
    if workers <= 1 or len(items) <= 1:
        yield from tqdm(map(function, items), **bar)
        return
    # spawn, not fork: workers must not inherit the parent's threads (tqdm, HTTP pools) or any
    # half-initialised native library state; each worker loads its own models lazily, once.
    context = multiprocessing.get_context("spawn")
    chunks, start = [], 0
    for size in guided_chunks(len(items), workers, chunksize):
        chunks.append(items[start : start + size])
        start += size
    with context.Pool(min(workers, len(items)), initializer=single_threaded) as pool, tqdm(**bar) as progress:
        for results in pool.imap_unordered(partial(_apply, function), chunks):
            progress.update(len(results))
            yield from results
