"""What a validation worker should send back: the JPEG bytes for the parent to write, or a short record after
writing the file itself. Measures the parent's CPU per image for each (the parent is the GIL-bound process).

Usage: python bench/ipc.py [--count 2000] [--size 90000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

RECORD = b"downloaded\0\0" + b"0001_0123abcd.jpg\0" + b"a" * 64 + b"\0" + b"b" * 16


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _worker(connection, folder: str, send_back: bool) -> None:
    """Receives (name, body) pairs; answers with the body, or writes it and answers with a record."""
    while name := connection.recv_bytes():
        data = connection.recv_bytes()
        if send_back:
            connection.send_bytes(data)
        else:
            _write(Path(folder) / name.decode(), data)
            connection.send_bytes(RECORD)


def measure(count: int, size: int, send_back: bool, folder: str) -> tuple[float, float]:
    """Parent CPU and wall microseconds per image for one way of answering."""
    context = multiprocessing.get_context("forkserver")
    ours, theirs = context.Pipe()
    worker = context.Process(target=_worker, args=(theirs, folder, send_back))
    worker.start()
    theirs.close()
    data = os.urandom(size)
    cpu, start = time.process_time(), time.perf_counter()
    for number in range(count):
        name = f"{number % 50}.jpg"
        ours.send_bytes(name.encode())
        ours.send_bytes(data)
        answer = ours.recv_bytes()
        if send_back:
            _write(Path(folder) / name, answer)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - start
    ours.send_bytes(b"")
    worker.join()
    return cpu / count * 1e6, wall / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=90_000, help="bytes per image (the download bench's mean)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for send_back, label in ((True, "JPEG bytes back, parent writes the file"),
                                 (False, "worker writes the file, record back")):
            runs = [measure(options.count, options.size, send_back, folder) for _ in range(3)]
            cpu, wall = sorted(runs)[1]
            print(f"{label}: parent CPU {cpu:.0f} us per image, round trip {wall:.0f} us (median of 3)")


if __name__ == "__main__":
    main()
