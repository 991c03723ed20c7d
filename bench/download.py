"""Download throughput: gimg vs a sequential fetch (the original's way) from 16 loopback hosts with 50 ms latency.

Usage: python bench/download.py [--count 2000] [--runs 3] [--sequential 200]

A separate process serves COUNT distinct JPEGs (640x480, quality 85, ~60-90 KB: gradients with noise), spread
round robin over 127.0.0.1 ... 127.0.0.16 (Linux routes all of 127/8 to lo), each answer 50 ms late. gimg
downloads them all as one term through the `urls` engine, with its default limits; the server counts the
most requests and connections each host had open at once. The sequential baseline fetches the first
SEQUENTIAL URLs one by one with urllib (a new connection each, as google_images_download did) and writes
the bytes. Prints a table; the speedup is gimg's images/s over the baseline's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

HOSTS = 16
LATENCY = 0.05
SIZE = (640, 480)


def make_images(count: int, seed: int = 0) -> list[bytes]:
    """count distinct JPEGs: a per-image colour gradient plus a shifted copy of one shared noise field."""
    from faultserver import encode
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = SIZE
    noise = rng.normal(0, 14, (height, width * 2, 3)).astype(np.float32)
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    images = []
    for number in range(count):
        start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        shift = (number * 7) % width
        pixels = start + (end - start) * ramp + noise[:, shift : shift + width]
        images.append(encode(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)), "JPEG", quality=85))
    return images


def _serve_all(pipe, count: int) -> None:
    """The server process: builds the images, serves them on 16 hosts, answers 'stats'/'reset'/'stop'."""
    from contextlib import ExitStack

    from faultserver import ok, serve

    images = make_images(count)
    with ExitStack() as stack:
        servers = []
        for index in range(HOSTS):
            routes = {f"/{number}.jpg": ok(images[number]) for number in range(index, count, HOSTS)}
            servers.append(stack.enter_context(serve(routes, host=f"127.0.0.{index + 1}", latency=LATENCY)))
        urls = [f"{servers[number % HOSTS].url}/{number}.jpg" for number in range(count)]
        pipe.send((urls, sum(map(len, images)) / count))
        while (command := pipe.recv()) != "stop":
            if command == "reset":
                for server in servers:
                    server.max_in_flight = server.max_connections = 0
                pipe.send(None)
            else:
                pipe.send((max(s.max_in_flight for s in servers), max(s.max_connections for s in servers)))


def run_gimg(urls: list[str]) -> tuple[float, str]:
    """Seconds for gimg to download every URL as one term (fresh output folder), and the term's detail."""
    from gimg.download import run_download
    from gimg.options import DownloadOptions

    with tempfile.TemporaryDirectory() as base:
        table = Path(base) / "urls.csv"
        table.write_text("term,url\n" + "".join(f"bench,{url}\n" for url in urls))
        start = time.perf_counter()
        options = DownloadOptions(engine="urls", urls=table, limit=len(urls))
        outcome = run_download(["bench"], Path(base) / "out", options)
        return time.perf_counter() - start, outcome[0].detail


def run_sequential(urls: list[str]) -> float:
    """Seconds to fetch urls one after the other with urllib, writing each body to a file."""
    with tempfile.TemporaryDirectory() as base:
        start = time.perf_counter()
        for number, url in enumerate(urls):
            with urllib.request.urlopen(url, timeout=10) as response:
                (Path(base) / f"{number}.jpg").write_bytes(response.read())
        return time.perf_counter() - start


def cpu_cost(images: list[bytes]) -> float:
    """Milliseconds of one thread per image for gimg's validation (decode, checks, sha256, phash)."""
    from gimg.validate import keep_image

    start = time.perf_counter()
    for data in images:
        keep_image(data)
    return (time.perf_counter() - start) / len(images) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=200, help="URLs for the (slow) sequential baseline")
    options = parser.parse_args()
    from gimg.fetch import FetchOptions
    from gimg.options import DownloadOptions

    context = multiprocessing.get_context("spawn")
    pipe, child = context.Pipe()
    server = context.Process(target=_serve_all, args=(child, options.count), daemon=True)
    server.start()
    urls, mean_bytes = pipe.recv()
    try:
        runs, peaks = [], []
        for _ in range(options.runs):
            pipe.send("reset")
            pipe.recv()
            seconds, detail = run_gimg(urls)
            pipe.send("stats")
            peaks.append(pipe.recv())
            runs.append(seconds)
            print(f"  gimg run: {seconds:.2f} s, {options.count / seconds:.0f} images/s ({detail})", file=sys.stderr)
        sequential = run_sequential(urls[: options.sequential])
    finally:
        pipe.send("stop")
        server.join(5)
    gimg_rate = options.count / statistics.median(runs)
    sequential_rate = options.sequential / sequential
    in_flight, connections = max(p[0] for p in peaks), max(p[1] for p in peaks)
    limits, per_host = FetchOptions(), DownloadOptions().max_per_host
    cost = cpu_cost(make_images(100))
    rows = [
        ("images", f"{options.count} x {SIZE[0]}x{SIZE[1]} JPEG, {mean_bytes / 1000:.0f} KB mean"),
        ("hosts / latency", f"{HOSTS} loopback addresses / {LATENCY * 1000:.0f} ms per request"),
        ("gimg limits", f"{limits.connections} connections, {per_host} per host"),
        ("gimg images/s (median)", f"{gimg_rate:.0f}  (runs: {', '.join(f'{options.count / s:.0f}' for s in runs)})"),
        ("sequential images/s", f"{sequential_rate:.1f}  ({options.sequential} URLs, urllib, one at a time)"),
        ("ratio", f"{gimg_rate / sequential_rate:.1f}x"),
        ("max requests in flight per host", f"{in_flight} (limit {per_host})"),
        ("max open connections per host", f"{connections} (limit {per_host})"),
        ("validation CPU per image, 1 thread", f"{cost:.1f} ms (decode + checks + sha256 + phash)"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
