"""Time the fused crop+classify pass on the same images through the local executor and through Ray on one node.

Usage: python bench/executors.py [--count 1000] [--runs 3] [--workers 2] [--images DIR]

Prints what Ray adds before any work (installed size, import time, `ray.init` start time, memory of an idle
local instance), then images/s of gimg.faces.crop_one with the onnx classifier (what `gimg pipeline` runs per
image) over the same images: LocalExecutor(workers) against RayExecutor(num_cpus=workers), which Ray starts
once before the runs. Runs alternate local, ray, local, ray...; rates are medians; every run's records are
checked equal to the first local run's. The first Ray map after the start (actors' first imports and model
loads) is timed apart. CPU time per image sums every process of the tree (Ray's daemons included): on a machine
other jobs share, it moves less than wall time. Workers' peak RSS sums the local pool's workers, or Ray's
worker processes (those Ray keeps idle for reuse included).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

# Spawned local workers re-import this script as __mp_main__: they must not load the bench's own modules.
if __name__ != "__mp_main__":
    import psutil
    from images import SHARED_DATA, build_bench_images, require_shared_data

from gimg.classify import CropClassifier  # noqa: E402
from gimg.executors import LocalExecutor, RayExecutor  # noqa: E402
from gimg.faces import CropTask, chunksize, crop_one  # noqa: E402
from gimg.options import ClassifyOptions, CropOptions  # noqa: E402

# What `pip install 'ray[data]'` added to gimg's environment here (the rest Ray needs, gimg has already).
RAY_DISTRIBUTIONS = ("ray", "pyarrow", "fsspec", "msgpack", "filelock", "PyYAML")


def installed_mib(distribution: str) -> float:
    """MiB of the files an installed distribution owns."""
    files = importlib.metadata.distribution(distribution).files or []
    return sum(path.locate().stat().st_size for path in files if path.locate().is_file()) / 2**20


def import_seconds(statement: str, runs: int) -> float:
    """Median wall time of a fresh interpreter running statement, less that of an empty one."""
    def timed(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start
    return statistics.median(timed(statement) - timed("pass") for _ in range(runs))


def role(process: psutil.Process) -> str | None:
    """self, local (a pool worker), ray-worker (its title starts with ray::) or ray (Ray's daemons).

    None while the command line cannot tell: a zombie's is empty, and a spawned child shows its parent's until
    it executes its own.
    """
    if process.pid == os.getpid():
        return "self"
    command = process.cmdline()
    if not command or process.status() == psutil.STATUS_ZOMBIE:
        return None
    if any("multiprocessing.spawn" in part for part in command):
        return "local"
    if command[0].startswith("ray::"):
        return "ray-worker"
    return None if "bench/executors.py" in " ".join(command) else "ray"


class TreeSampler:
    """Every 50 ms: the RSS of this process and its descendants by role, and the CPU seconds each has used.

    cpu is the CPU time the whole tree spent while sampling (processes that existed before count from their
    first sample): less sensitive than wall time to other jobs on a shared machine. A process's last < 50 ms
    before it exits are missed. RSS counts pages shared between processes once per process.
    """

    def __init__(self) -> None:
        self.rss: list[dict[str, int]] = []
        self._first: dict[tuple[int, float], float] = {}
        self._last: dict[tuple[int, float], float] = {}
        self._roles: dict[tuple[int, float], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        totals = {"self": 0, "local": 0, "ray-worker": 0, "ray": 0}
        for process in [me, *me.children(recursive=True)]:
            try:
                with process.oneshot():
                    key, times, kind = (process.pid, process.create_time()), process.cpu_times(), role(process)
                    rss = process.memory_info().rss
            except psutil.Error:  # exited between listing and reading
                continue
            used = times.user + times.system
            self._first.setdefault(key, used if key[1] < self._start else 0.0)  # born during the run: from 0
            self._last[key] = used
            if kind is not None:
                self._roles[key] = kind
            totals[self._roles.get(key, "ray")] += rss
        self.rss.append(totals)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> TreeSampler:
        self._start = time.time()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def cpu(self) -> float:
        return sum(self._last[key] - self._first[key] for key in self._last)

    def cpu_of(self, *roles: str) -> float:
        """CPU seconds the processes in these roles used while sampling."""
        return sum(self._last[key] - self._first[key] for key in self._last if self._roles.get(key, "ray") in roles)

    def peak(self, *roles: str) -> int:
        """The largest summed RSS of the processes in these roles."""
        return max((sum(sample[name] for name in roles) for sample in self.rss), default=0)


def tasks(images: list[Path], crop_dir: Path) -> list[CropTask]:
    """The fused pass's tasks for the images, cropping into a fresh crop_dir."""
    shutil.rmtree(crop_dir, ignore_errors=True)
    crop_dir.mkdir(parents=True)
    hook = CropClassifier(ClassifyOptions())
    return [CropTask("bench", str(path), str(crop_dir), CropOptions(), hook) for path in images]


def timed_map(executor, images: list[Path], crop_dir: Path, workers: int) -> tuple[float, list[str]]:
    """Seconds for the executor to crop and classify the images, and the records in a comparable form."""
    work = tasks(images, crop_dir)
    start = time.perf_counter()
    records = list(executor.map(crop_one, work, desc="bench", chunksize=chunksize(len(work), workers)))
    elapsed = time.perf_counter() - start
    failed = [record for record in records if record.status in ("failed", "unreadable") or record.hook_error]
    if len(records) != len(work) or failed:
        raise SystemExit(f"{len(records)} records for {len(work)} images; failed: {failed[:1]}")
    return elapsed, sorted(repr(record).replace(str(crop_dir), "CROPS") for record in records)


def main() -> None:
    """Measure Ray's fixed costs, then local against Ray on the same images, and print every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="bench images (scene photos included)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each executor; rates are medians")
    parser.add_argument("--workers", type=int, default=2, help="local workers, and the CPUs of the local Ray")
    parser.add_argument("--images", type=Path, default=None, help="an OUT/images folder of bench/images.py to reuse")
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA, help="the shared data folder")
    options = parser.parse_args()
    if options.count < 1 or options.runs < 1 or options.workers < 1:
        print("error: --count, --runs and --workers must be at least 1", file=sys.stderr)
        sys.exit(2)
    print(f"gimg {importlib.metadata.version('gimg')}, Ray {importlib.metadata.version('ray')}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print("command: python " + " ".join(sys.argv))
    print("\n## What Ray adds before any work")
    sizes = {name: installed_mib(name) for name in RAY_DISTRIBUTIONS}
    print(f"installed: {sum(sizes.values()):.0f} MiB (" + ", ".join(f"{n} {s:.0f}" for n, s in sizes.items()) + ")")
    for statement in ("import ray", "import ray.data", "import gimg.faces"):
        print(f"`{statement}`: {import_seconds(statement, 3):.2f} s (median of 3, fresh interpreter)")

    with tempfile.TemporaryDirectory(prefix="gimg-bench-executors-") as temporary:
        work = Path(temporary)
        if options.images is None:
            require_shared_data(options.shared_data)
            build_bench_images(options.shared_data, work / "set", options.count, 0)
            folder = work / "set" / "images"
        else:
            folder = options.images
        images = sorted(folder.glob("*.jpg"))[: options.count]
        ray = RayExecutor(num_cpus=options.workers)
        start = time.perf_counter()
        ray.start()
        started = time.perf_counter() - start
        time.sleep(2)  # Ray's processes settle
        with TreeSampler() as idle:
            time.sleep(2)
        print(f"`ray.init(num_cpus={options.workers})` (include_dashboard=False): {started:.2f} s; idle, Ray's daemons"
              f" use {idle.peak('ray') / 2**20:.0f} MiB RSS and its idle workers {idle.peak('ray-worker') / 2**20:.0f}"
              f" MiB; {idle.cpu / 2:.3f} CPU s per s in all")

        local = LocalExecutor(options.workers)
        print(f"\n## {len(images)} images, crop_one + onnx classifier, {options.workers} workers")
        first, _ = timed_map(ray, images[:100], work / "crops", options.workers)
        print(f"first Ray map after the start (100 images: actor start-up, imports, model loads): {first:.2f} s")
        figures = {name: {"rate": [], "cpu": [], "workers": [], "rss": []} for name in ("local", "ray")}
        reference = None
        for run in range(options.runs):
            for name, executor in (("local", local), ("ray", ray)):
                with TreeSampler() as sampler:
                    elapsed, records = timed_map(executor, images, work / "crops", options.workers)
                reference = reference or records
                same = "same records" if records == reference else "DIFFERENT RECORDS"
                figures[name]["rate"].append(len(images) / elapsed)
                workers = "local" if name == "local" else "ray-worker"
                figures[name]["cpu"].append(1000 * sampler.cpu / len(images))
                figures[name]["workers"].append(1000 * sampler.cpu_of(workers) / len(images))
                figures[name]["rss"].append(sampler.peak(workers) / 2**20)
                print(f"run {run + 1} {name} (load {os.getloadavg()[0]:.1f}): {figures[name]['rate'][-1]:.1f} images/s "
                      f"({elapsed:.2f} s), CPU ms per image {figures[name]['cpu'][-1]:.1f} in all, "
                      f"{figures[name]['workers'][-1]:.1f} in workers; "
                      f"workers' peak RSS {figures[name]['rss'][-1]:.0f} MiB; {same}", flush=True)
        ray.close()

    median = {name: {key: statistics.median(values) for key, values in by.items()} for name, by in figures.items()}
    print(f"\n## Medians of {options.runs} runs (load average {os.getloadavg()[0]:.1f} at the end)")
    print("| executor | images/s | runs (images/s) | CPU ms/image, all | in workers | workers' peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for name, values in median.items():
        runs = " / ".join(f"{value:.1f}" for value in figures[name]["rate"])
        print(f"| {name} | {values['rate']:.1f} | {runs} | {values['cpu']:.1f} | {values['workers']:.1f} "
              f"| {values['rss']:.0f} |")
    wall = median["local"]["rate"] / median["ray"]["rate"] - 1
    cpu = median["ray"]["cpu"] / median["local"]["cpu"] - 1
    print(f"Ray's overhead on one node: {wall:+.1%} wall time per image, {cpu:+.1%} CPU time per image")


if __name__ == "__main__":
    main()
