"""Download throughput: gimg against img2dataset, side by side in one run, from 16 loopback hosts with 50 ms latency.

Usage: python bench/download.py [--count 1000] [--runs 3] [--sequential 200] [--img2dataset PATH]
                                [--modes gimg,img2dataset-raw,img2dataset-decode] [--other-src DIR/src]

A separate process serves COUNT distinct JPEGs (640x480, quality 85, ~60-90 KB: gradients with noise), spread
round robin over 127.0.0.1 ... 127.0.0.16 (Linux routes all of 127/8 to lo), each answer 50 ms late; it counts
the most requests and connections each host had open at once. Each run is a whole process, timed from its
start to its exit, as a user would run it:
- gimg: `python -m gimg download` of all the URLs as one term (`--engine urls`), with its defaults: full
  validation (sniff, decode, EXIF, colour, sha256, phash), 64 connections, at most 4 per host, one validation
  process per CPU;
- img2dataset without decoding (`--disable_all_reencoding True`), and with decoding and re-encoding
  (`--resize_mode no`: OpenCV decode, JPEG quality 95), its closest like-for-like mode; 2 processes of 32
  threads, one shard each.
The modes take turns in every round, so that a change in the machine's load falls on all of them; the table
gives the medians of RUNS rounds. Every run's results are counted from its outputs (gimg's manifest,
img2dataset's stats files): a run that did not account for every URL is reported. CPU is the user + system
time of the process and all its children; peak RSS is the sum over the process tree, sampled every 50 ms.
Also measured, in this process: a bare fetch (gimg's fetcher on 64 threads, bodies thrown away: the network
ceiling), gimg's validation on one thread, and a sequential fetch (urllib, one URL at a time, as the original).

img2dataset runs from its own environment, never gimg's: when PATH is absent the bench makes it with
`python3.11 -m venv bench/.img2dataset && bench/.img2dataset/bin/pip install img2dataset==1.47.0`.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

HOSTS = 16
LATENCY = 0.05
SIZE = (640, 480)
IMG2DATASET_VERSION = "1.47.0"
IMG2DATASET_PROCESSES, IMG2DATASET_THREADS = 2, 32


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
                    server.requests.clear()
                pipe.send(None)
            else:
                pipe.send((max(s.max_in_flight for s in servers), max(s.max_connections for s in servers),
                           sum(sum(s.requests.values()) for s in servers)))


@dataclass
class Run:
    """One whole-process run: wall and CPU seconds, peak RSS, what its outputs say, what the server saw."""

    seconds: float
    cpu: float
    rss_mib: float
    kept: int
    accounted: int
    in_flight: int = 0
    connections: int = 0
    requests: int = 0


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run command to its end: wall seconds, CPU seconds of its process tree, peak RSS of the tree (MiB).

    The tree's CPU is sampled with its RSS (every 20 ms, the last reading of each process), because processes
    forked by a forkserver are never waited for by the command, so getrusage(RUSAGE_CHILDREN) misses them.
    The larger of the two is reported.
    """
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, stop, cpu_seen = [0], threading.Event(), {}

    def sample() -> None:
        root = psutil.Process(process.pid)
        while not stop.wait(0.02):
            try:
                tree = [root, *root.children(recursive=True)]
                rss = 0
                for member in tree:
                    rss += member.memory_info().rss
                    times = member.cpu_times()
                    cpu_seen[member.pid] = times.user + times.system
                peak[0] = max(peak[0], rss)
            except psutil.Error:  # a process ended between the listing and the reading
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, errors = process.communicate()
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({process.returncode}): {errors.decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, max(waited, sum(cpu_seen.values())), peak[0] / 2**20


def run_gimg(urls: list[str], work: Path, source: Path | None = None) -> Run:
    """`python -m gimg download` of every URL as one term, with gimg's defaults; counts its manifest.

    source: a folder holding another gimg package (`git archive REV src | tar -x -C DIR`, then DIR/src),
    put first on PYTHONPATH, to compare with another revision in the same run.
    """
    table, terms, out = work / "urls.csv", work / "terms.txt", work / "gimg"
    table.write_text("term,url\n" + "".join(f"bench,{url}\n" for url in urls))
    terms.write_text("bench\n")
    command = [sys.executable, "-m", "gimg", "-q", "download", str(terms), "--out", str(out), "--engine", "urls",
               "--urls", str(table), "--limit", str(len(urls))]
    env = {**os.environ, "PYTHONPATH": str(source)} if source is not None else dict(os.environ)
    seconds, cpu, rss = _timed(command, env)
    with (out / "Downloaded_images" / "bench" / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ranks = sorted(int(row["rank"]) for row in rows)
    accounted = len(rows) if ranks == list(range(1, len(urls) + 1)) else -1
    kept = Counter(row["status"] for row in rows)["downloaded"]
    return Run(seconds, cpu, rss, kept, accounted)


def run_img2dataset(urls: list[str], work: Path, executable: Path, decode: bool) -> Run:
    """img2dataset on the same URLs, with or without decoding; counts its stats files and written images."""
    listing, out = work / "urls.txt", work / ("i2d-decode" if decode else "i2d-raw")
    listing.write_text("".join(f"{url}\n" for url in urls))
    command = [str(executable), "--url_list", str(listing), "--input_format", "txt", "--output_folder", str(out),
               "--output_format", "files", "--processes_count", str(IMG2DATASET_PROCESSES),
               "--thread_count", str(IMG2DATASET_THREADS),
               "--number_sample_per_shard", str(-(-len(urls) // IMG2DATASET_PROCESSES)),
               "--resize_mode", "no", "--timeout", "10", "--retries", "0", "--enable_wandb", "False",
               "--disable_all_reencoding", str(not decode)]
    # Albumentations (imported by img2dataset) looks online for a newer version at import unless told not to.
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    seconds, cpu, rss = _timed(command, env)
    stats = [json.loads(path.read_text()) for path in out.glob("*_stats.json")]
    accounted = sum(item["count"] for item in stats)
    kept = sum(item["successes"] for item in stats)
    written = len(list(out.rglob("*.jpg")))
    return Run(seconds, cpu, rss, kept if written == kept else -written, accounted)


def bare_fetch(urls: list[str]) -> tuple[float, float]:
    """gimg's fetcher on 64 threads, at most 4 per host, bodies thrown away: images/s and CPU ms per image."""
    from gimg.fetch import Fetcher, FetchOptions, HostQueue, host_of

    options, per_host = FetchOptions(), 4
    hosts: HostQueue[str] = HostQueue(per_host)
    for url in urls:
        hosts.put(host_of(url) or "", url)
    left = [len(urls)]
    lock = threading.Lock()

    def work(fetcher: Fetcher) -> None:
        while left[0] and (item := hosts.take()) is not None:
            host, url = item
            fetcher.get(url)
            hosts.done(host)
            with lock:
                left[0] -= 1
                if not left[0]:
                    hosts.close()

    with Fetcher(options, per_host) as fetcher:
        threads = [threading.Thread(target=work, args=(fetcher,)) for _ in range(options.connections)]
        cpu, start = time.process_time(), time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(urls) / seconds, cpu / len(urls) * 1000


def run_sequential(urls: list[str]) -> float:
    """Images/s fetching urls one after the other with urllib, writing each body to a file."""
    with tempfile.TemporaryDirectory() as base:
        start = time.perf_counter()
        for number, url in enumerate(urls):
            with urllib.request.urlopen(url, timeout=10) as response:
                (Path(base) / f"{number}.jpg").write_bytes(response.read())
        return len(urls) / (time.perf_counter() - start)


def cpu_cost(images: list[bytes]) -> float:
    """Milliseconds of one thread per image for gimg's validation (decode, checks, sha256, phash)."""
    from gimg.validate import keep_image

    keep_image(images[0])  # imagehash imports scipy at its first phash: 0.25 CPU s that is no image's cost
    start = time.process_time()
    for data in images:
        keep_image(data)
    return (time.process_time() - start) / len(images) * 1000


def img2dataset_path(given: Path | None) -> Path:
    """The img2dataset command to run: the one given, or the bench's own venv's, made when absent."""
    if given is not None:
        return given
    venv = HERE / ".img2dataset"
    executable = venv / "bin" / "img2dataset"
    if not executable.exists():
        print(f"making {venv} with img2dataset {IMG2DATASET_VERSION} (once)", file=sys.stderr)
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"img2dataset=={IMG2DATASET_VERSION}"],
                       check=True)
    return executable


@dataclass(frozen=True)
class Tools:
    """What the modes run: the img2dataset command, another gimg's src/ folder."""

    img2dataset: Path | None = None
    other_src: Path | None = None


MODES = {
    "gimg": lambda urls, work, tools: run_gimg(urls, work),
    "gimg-other": lambda urls, work, tools: run_gimg(urls, work, tools.other_src),
    "img2dataset-raw": lambda urls, work, tools: run_img2dataset(urls, work, tools.img2dataset, decode=False),
    "img2dataset-decode": lambda urls, work, tools: run_img2dataset(urls, work, tools.img2dataset, decode=True),
}
LABELS = {
    "gimg": "gimg (full validation)",
    "gimg-other": "gimg from --other-src",
    "img2dataset-raw": "img2dataset, no decoding",
    "img2dataset-decode": "img2dataset, decode + re-encode",
}


def _line(name: str, runs: list[Run], count: int) -> str:
    rates = [count / run.seconds for run in runs]
    middle = statistics.median(rates)
    accounted = "all" if all(run.accounted == count for run in runs) else ", ".join(str(r.accounted) for r in runs)
    return (f"| {name} | {middle:.0f} | {', '.join(f'{rate:.0f}' for rate in rates)} | "
            f"{statistics.median(run.cpu for run in runs) / count * 1000:.2f} | "
            f"{max(run.rss_mib for run in runs):.0f} | {accounted} / {min(run.kept for run in runs)} | "
            f"{max(run.in_flight for run in runs)} / {max(run.connections for run in runs)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=200, help="URLs for the (slow) sequential baseline")
    parser.add_argument("--img2dataset", type=Path, default=None, help="img2dataset command (default: its own venv)")
    parser.add_argument("--modes", default="gimg,img2dataset-raw,img2dataset-decode",
                        help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--other-src", type=Path, default=None,
                        help="a src/ folder of another gimg revision, run as mode gimg-other (added when given)")
    options = parser.parse_args()
    modes = [mode.strip() for mode in options.modes.split(",")]
    if options.other_src is not None and "gimg-other" not in modes:
        modes.insert(1, "gimg-other")
    wants_img2dataset = any(mode.startswith("img2dataset") for mode in modes)
    tools = Tools(img2dataset_path(options.img2dataset) if wants_img2dataset else None,
                  options.other_src.resolve() if options.other_src else None)
    load_before = os.getloadavg()

    context = multiprocessing.get_context("spawn")
    pipe, child = context.Pipe()
    server = context.Process(target=_serve_all, args=(child, options.count), daemon=True)
    server.start()
    urls, mean_bytes = pipe.recv()
    runs: dict[str, list[Run]] = {mode: [] for mode in modes}
    try:
        for round_number in range(options.runs):
            for mode in modes:
                pipe.send("reset")
                pipe.recv()
                with tempfile.TemporaryDirectory() as work:
                    run = MODES[mode](urls, Path(work), tools)
                pipe.send("stats")
                run.in_flight, run.connections, run.requests = pipe.recv()
                runs[mode].append(run)
                print(f"  round {round_number + 1}, {mode}: {run.seconds:.2f} s, {options.count / run.seconds:.0f} "
                      f"images/s, CPU {run.cpu:.1f} s, {run.requests} requests, {run.kept} kept", file=sys.stderr)
        fetch_rate, fetch_cpu = bare_fetch(urls)
        sequential = run_sequential(urls[: options.sequential]) if options.sequential else float("nan")
    finally:
        pipe.send("stop")
        server.join(5)
    validation = cpu_cost(make_images(100))
    load_after = os.getloadavg()

    print(f"{options.count} x {SIZE[0]}x{SIZE[1]} JPEG ({mean_bytes / 1000:.0f} KB mean) from {HOSTS} loopback "
          f"hosts, {LATENCY * 1000:.0f} ms per request; {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; medians of {options.runs} rounds\n")
    print("| whole process | images/s (median) | runs | CPU ms per image | peak RSS MiB | results accounted for "
          "/ images kept | most requests / connections per host |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        print(_line(LABELS[mode], runs[mode], options.count))
    print()
    rates = {mode: statistics.median(options.count / run.seconds for run in runs[mode]) for mode in modes}
    for mode in (mode for mode in modes if mode != "gimg" and "gimg" in modes):
        rounds = ", ".join(f"{theirs.seconds / ours.seconds:.2f}" for ours, theirs in zip(runs["gimg"], runs[mode]))
        print(f"gimg / {LABELS[mode]}: {rates['gimg'] / rates[mode]:.2f}x (medians); per round: {rounds}")
    print(f"bare fetch, 64 threads, 4 per host, in process: {fetch_rate:.0f} images/s, {fetch_cpu:.2f} CPU ms per image")
    print(f"gimg validation on one thread: {validation:.2f} CPU ms per image (decode + checks + sha256 + phash)")
    print(f"sequential fetch (urllib, {options.sequential} URLs, one at a time): {sequential:.1f} images/s")


if __name__ == "__main__":
    main()
