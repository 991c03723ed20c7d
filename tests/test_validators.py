"""Validation on worker processes: the same files and rows as in the download threads, and dead workers survived."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from faultserver import HTML, SVG, animated_gif, cmyk_jpeg, encode, exif_rotated_jpeg, gray16_png, ok, photo, serve
from PIL import Image

from gimg.download import run_download
from gimg.layout import Layout
from gimg.options import DownloadOptions, ExecutionOptions
from gimg.validators import InThreads, Job, ProcessPool, Stored, store

BODIES = {
    "/plain.jpg": ok(encode(photo(0), "JPEG", quality=90)),
    "/copy.jpg": ok(encode(photo(0), "JPEG", quality=90)),
    "/near.jpg": ok(encode(photo(0), "JPEG", quality=60)),
    "/cmyk.jpg": ok(cmyk_jpeg()),
    "/rotated.jpg": ok(exif_rotated_jpeg()),
    "/gray16.png": ok(gray16_png(), "image/png"),
    "/animated.gif": ok(animated_gif(), "image/gif"),
    "/alpha.png": ok(encode(photo(3).convert("RGBA"), "PNG"), "image/png"),
    "/html.jpg": ok(HTML),
    "/vector.svg": ok(SVG, "image/svg+xml"),
    "/truncated.jpg": ok(encode(photo(4, (200, 150)), "JPEG")[:900]),
    "/tiny.png": ok(encode(Image.new("RGB", (20, 20)), "PNG"), "image/png"),
    **{f"/{number}.jpg": ok(encode(photo(number, (160, 120)), "JPEG")) for number in range(10, 30)},
}


def _download(server, base: Path, workers: int) -> tuple[list[dict], dict[str, bytes], str]:
    """Every body (and a 404) as one term with `workers` validation processes: rows, files, near duplicates."""
    base.mkdir()
    table = base / "urls.csv"
    links = [server.link(path) for path in [*BODIES, "/missing.jpg"]]
    table.write_text("term,url\n" + "".join(f"t,{link}\n" for link in links), encoding="utf-8")
    options = DownloadOptions(engine="urls", urls=table, limit=100)
    outcome = run_download(["t"], base / "out", options, ExecutionOptions(workers=workers))
    assert outcome[0].status == "done", outcome
    folder = Layout(base / "out").downloaded("t")
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = [{key: value for key, value in row.items() if key not in ("time", "run")}  # when, and which run
                for row in csv.DictReader(handle)]
    files = {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*")
             if path.is_file() and path.name not in ("manifest.csv", "near_duplicates.csv")}
    return rows, files, (folder / "near_duplicates.csv").read_text(encoding="utf-8")


def test_worker_processes_give_the_same_rows_and_files_as_the_download_threads(tmp_path):
    with serve(BODIES) as server:
        threaded = _download(server, tmp_path / "threads", workers=1)
        pooled = _download(server, tmp_path / "processes", workers=2)
    rows, files, near = threaded
    statuses = {row["url"].rsplit("/", 1)[1]: row["status"] for row in rows}
    assert (statuses["plain.jpg"], statuses["copy.jpg"], statuses["html.jpg"], statuses["missing.jpg"]) == (
        "downloaded", "duplicate", "rejected", "failed"), "the inputs cover every status"
    assert any(name.startswith("_quarantine/") for name in files) and len(near.splitlines()) > 1
    assert pooled[0] == rows, "the same manifest rows but the time and run id"
    assert pooled[1] == files, "the same files, byte for byte"
    assert pooled[2] == near


def _slow_png() -> bytes:
    """A valid 4000x3000 PNG of 43 KB that takes about half a second of CPU to check and re-encode."""
    return encode(Image.linear_gradient("L").resize((4000, 3000)).convert("RGB"), "PNG")


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _only_worker(pool: ProcessPool) -> int:
    """The pid of the pool's one worker, once it runs."""
    deadline = time.monotonic() + 30
    while not pool.pids():
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.01)
    (pid,) = pool.pids()
    return pid


def test_a_worker_killed_mid_image_fails_that_image_and_the_next_ones_go_on(tmp_path):
    outcomes: dict[str, Stored] = {}
    arrived = threading.Event()

    def done(name: str):
        def record(stored: Stored) -> None:
            outcomes[name] = stored
            arrived.set()
        return record

    with ProcessPool(1) as pool:
        victim = _only_worker(pool)
        deadline = time.monotonic() + 30
        before = _cpu(victim)
        pool.submit(Job(_slow_png(), str(tmp_path), "0001_slow"), done("slow"))
        while _cpu(victim) < before + 0.03:  # it is decoding now: 0.03 of about 0.5 CPU s
            assert time.monotonic() < deadline and not arrived.is_set(), "the slow image never started"
            time.sleep(0.005)
        os.kill(victim, signal.SIGKILL)
        assert arrived.wait(30)
        pool.submit(Job(encode(photo(1), "JPEG"), str(tmp_path), "0002_next"), done("next"))
        pool.submit(Job(HTML, str(tmp_path), "0003_page"), done("page"))
    assert outcomes["slow"] == Stored("failed", "validation process died (killed by SIGKILL)")
    assert (outcomes["next"].status, outcomes["next"].file) == ("downloaded", "0002_next.jpg")
    assert (outcomes["page"].status, outcomes["page"].file) == ("rejected", "_quarantine/0003_page.bin")
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["0002_next.jpg", "0003_page.bin", "_quarantine"]


def test_a_worker_killed_while_idle_is_replaced_before_it_gets_a_job(tmp_path):
    got: list[Stored] = []
    with ProcessPool(1) as pool:
        victim = _only_worker(pool)
        deadline = time.monotonic() + 30
        os.kill(victim, signal.SIGKILL)
        while pool.pids():
            assert time.monotonic() < deadline, "the pool never saw its worker die"
            time.sleep(0.01)
        pool.submit(Job(encode(photo(2), "JPEG"), str(tmp_path), "0001_a"), got.append)
    assert [stored.status for stored in got] == ["downloaded"]


def test_workers_killed_mid_run_leave_every_result_accounted_for(tmp_path):
    """Both workers are killed once a third of the images are served; each result still gets one row."""
    images = {f"/{number}.jpg": ok(encode(photo(number, (320, 240)), "JPEG")) for number in range(45)}
    with serve(images, latency=0.02) as server:
        table = tmp_path / "urls.csv"
        table.write_text("term,url\n" + "".join(f"t,{server.link(path)}\n" for path in images), encoding="utf-8")
        options = DownloadOptions(engine="urls", urls=table, limit=100, max_per_host=2)
        killed: list[int] = []

        def kill_the_workers() -> None:
            deadline = time.monotonic() + 60
            while sum(server.requests.values()) < 15 and time.monotonic() < deadline:
                time.sleep(0.005)
            for child in psutil.Process().children():  # the forkserver; the workers are its children
                if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                    for worker in child.children():
                        worker.kill()
                        killed.append(worker.pid)

        killer = threading.Thread(target=kill_the_workers)
        killer.start()
        outcome = run_download(["t"], tmp_path / "out", options, ExecutionOptions(workers=2))
        killer.join()
    assert killed, "the workers were found and killed"
    folder = Layout(tmp_path / "out").downloaded("t")
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["url"] for row in rows] == [server.link(path) for path in images], "each result once, in order"
    died = [row for row in rows if row["status"] == "failed"]
    assert all(row["error"] == "validation process died (killed by SIGKILL)" for row in died)
    assert len(died) <= len(killed) and outcome[0].detail.startswith(f"{len(images) - len(died)} downloaded")
    kept = sorted(row["file"] for row in rows if row["status"] == "downloaded")
    assert sorted(path.name for path in folder.glob("*.jpg")) == kept and not list(folder.rglob("*.tmp"))


def test_a_pool_whose_workers_cannot_start_fails_every_job_instead_of_hanging(tmp_path, monkeypatch):
    """No process can be started here on purpose (the machine out of processes cannot be made in a test)."""

    def refuse(*args: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr("gimg.validators._Worker.__init__", refuse)
    got: list[Stored] = []
    with ProcessPool(2) as pool:
        for number in range(12):
            pool.submit(Job(encode(photo(number), "JPEG"), str(tmp_path), f"{number:04d}_x"), got.append)
    assert len(got) == 12
    assert {stored.error for stored in got} == {
        "validation process failed: BlockingIOError: [Errno 11] Resource temporarily unavailable"}


def test_store_fails_a_body_it_cannot_write_and_rejects_one_it_cannot_read(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    failed = store(Job(encode(photo(1), "JPEG"), str(blocked), "0001_x"))
    assert failed.status == "failed" and failed.error.startswith(("FileExistsError", "NotADirectoryError"))
    with InThreads() as threads:
        got: list[Stored] = []
        threads.submit(Job(b"", str(tmp_path), "0002_y"), got.append)
    assert got == [Stored("rejected", "not an image: empty body", "_quarantine/0002_y.bin",
                          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
