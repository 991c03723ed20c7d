"""The process pool: results from every item, and workers that each own one core."""

from __future__ import annotations

import os

import cv2
import pytest

from gimg import parallel


def _threads(_: int) -> tuple[str, int]:
    return os.environ.get("OPENCV_FOR_THREADS_NUM", ""), cv2.getNumThreads()


def _square(value: int) -> int:
    return value * value


@pytest.mark.parametrize("workers", [1, 2])
def test_imap_returns_every_result(workers):
    assert sorted(parallel.imap(_square, range(20), workers=workers, desc="test", chunksize=3)) == [
        value * value for value in range(20)
    ]


def test_workers_run_opencv_single_threaded():
    """cv2 is already imported here, so the spawned workers import it before their initializer runs."""
    assert set(parallel.imap(_threads, range(8), workers=2, desc="test")) == {("1", 1)}


@pytest.mark.parametrize("count, workers, largest", [(0, 2, 16), (1, 2, 16), (300, 2, 16), (10_000, 2, 16), (50, 4, 3)])
def test_guided_chunks_cover_every_item_and_shrink_to_one(count, workers, largest):
    sizes = parallel.guided_chunks(count, workers, largest)
    assert sum(sizes) == count
    assert all(1 <= size <= largest for size in sizes)
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1:] in ([], [1])
