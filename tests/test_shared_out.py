"""One output folder, many gimg processes, two executors: real runs of the CLI against the local engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from gimg.claims import Owner
from gimg.design import Branch, StudyDesign, Wave, read_design, write_design
from gimg.layout import FACES_CLAIM, STUDY_INDEX_CLAIM, Layout
from gimg.localengine import build_site, read_face_labels, serve_site
from gimg.stageclaims import StageClaims

SHARES = {"nurse": 0.8, "software developer": 0.2, "cashier": 0.6, "judge": 0.4}
PER_TERM = 8
STAGES = ("download", "crop", "classify")
ELSEWHERE = Owner("node-b", 4711, "feedfacefeedface", "another-machine")  # a worker on another node
NOT_COMPARED = {"runs", ".claims"}  # when each run happened, and the claims' empty stage folders


@pytest.fixture(scope="module")
def site(tmp_path_factory, fixtures):
    """The local engine's site: PER_TERM composed images per term, and its terms file."""
    root = tmp_path_factory.mktemp("site")
    faces = fixtures / "faces"
    build_site(read_face_labels(faces), faces / "images", root / "site", SHARES, per_term=PER_TERM, seed=5)
    (root / "terms.txt").write_text("\n".join(SHARES) + "\n", encoding="utf-8")
    with serve_site(root / "site") as base_url:
        yield {"terms": root / "terms.txt", "url": base_url}


def _command(site: dict, out: Path, command: str, *options: str) -> list[str]:
    """`gimg -v COMMAND` as a process of its own; download and pipeline search the local engine."""
    search = [str(site["terms"]), "--engine-url", site["url"], "--limit", str(PER_TERM)]
    return [sys.executable, "-m", "gimg", "-v", command, *(search if command in ("download", "pipeline") else []),
            "--out", str(out), *options]


def _run(arguments: list[str], timeout: float = 600) -> str:
    result = subprocess.run(arguments, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def _tree(out: Path) -> list[Path]:
    return sorted(path.relative_to(out) for path in out.rglob("*")
                  if path.is_file() and not NOT_COMPARED & set(path.relative_to(out).parts))


def _content(path: Path) -> bytes:
    """A file's bytes; the report's without its footer, which says when and from which folder it was made."""
    data = path.read_bytes()
    return re.sub(rb"<footer>.*?</footer>", b"", data, flags=re.DOTALL) if path.name == "report.html" else data


def _same_trees(first: Path, second: Path) -> None:
    assert _tree(first) == _tree(second)
    assert [str(path) for path in _tree(first) if _content(first / path) != _content(second / path)] == []


@pytest.fixture(scope="module")
def downloaded(site, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("downloaded") / "out"
    _run(_command(site, out, "download", "--workers", "2"))
    return out


def test_a_pipeline_on_ray_gives_the_local_executors_outputs(site, downloaded, tmp_path):
    """Every file but runs/ (when each run was), .claims/ and the report's footer is compared, byte for byte.

    Both trees start from one download (downloads ignore --executor), so its manifests (with their run column),
    context/ record and study.json are the same download's, and compared too: a pipeline must leave them as they were.
    """
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install -e '.[ray]'")
    local, ray = tmp_path / "local", tmp_path / "ray"
    shutil.copytree(downloaded, local)
    shutil.copytree(downloaded, ray)
    _run(_command(site, local, "pipeline", "--workers", "2", "--landmarks"))
    said = _run(_command(site, ray, "pipeline", "--workers", "2", "--landmarks", "--executor", "ray"))
    assert f"crop: {len(SHARES)} done" in said and f"classify: {len(SHARES)} done" in said
    _same_trees(local, ray)
    again = _run(_command(site, ray, "pipeline", "--workers", "2", "--landmarks"))
    assert f"crop: 0 done, {len(SHARES)} already done" in again, "resume works across executors"


def _done_by(outputs: list[str]) -> dict[tuple[str, str], int]:
    """How many processes said each (stage, term) was done."""
    counts: dict[tuple[str, str], int] = {}
    for output in outputs:
        terms = "|".join(map(re.escape, SHARES))
        for stage, term in re.findall(rf"^(download|crop|classify): ({terms}): done", output, re.MULTILINE):
            counts[stage, term] = counts.get((stage, term), 0) + 1
    return counts


@pytest.mark.parametrize("busy", ["wait", "skip"])
def test_two_pipelines_at_once_on_one_folder_do_every_term_once(site, tmp_path, busy):
    out = tmp_path / "out"
    runs = [subprocess.Popen(_command(site, out, "pipeline", "--workers", "1", "--busy", busy),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stdout[-2000:] + stderr[-2000:]
        outputs.append(stdout)
    done = _done_by(outputs)
    assert done == {(stage, term): 1 for stage in STAGES for term in SHARES}, "every term done once, by one"
    layout = Layout(out)
    for term in SHARES:
        faces = pd.read_csv(layout.faces(term))
        crops = {path.name for path in layout.cropped(term).glob("*.jpg")}
        assert crops == set(faces.file), "no crop lost, none left over"
        assert list(pd.read_csv(layout.dataset(term)).file) == list(faces.file)
        assert (pd.read_csv(layout.manifest(term)).status == "downloaded").sum() == PER_TERM
    assert sorted(Layout(out).known_terms()) == sorted(SHARES)
    assert sorted(pd.read_csv(layout.download_summary).term) == sorted(SHARES), "no summary drops a term"
    assert sorted(pd.read_csv(layout.summary_csv).term) == sorted(SHARES), "the last analysis saw every term"
    assert not [path for path in (out / ".claims").rglob("*") if path.is_file()], "every claim released"


def test_a_term_held_elsewhere_is_reported_busy_with_its_holder(site, downloaded, tmp_path, gimg):
    out = tmp_path / "out"
    shutil.copytree(downloaded, out)
    other = StageClaims(out, FACES_CLAIM, owner=ELSEWHERE)
    held = other.try_claim("nurse")
    code, said, _ = gimg("crop", "--out", out, "--workers", "1", "--busy", "skip")
    held.release()
    assert code == 0
    assert "crop: nurse: busy: in progress elsewhere (node-b, pid 4711)" in said
    assert f"crop: {len(SHARES) - 1} done, 0 already done, 1 in progress elsewhere, 0 failed" in said
    assert not Layout(out).faces("nurse").exists()


def _until_it_waits(process: subprocess.Popen, waiting: str) -> str:
    """What process printed up to the line that says it waits (all of it, if it never says so)."""
    watchdog = threading.Timer(300, process.kill)  # bounds the reading if the line never comes
    watchdog.start()
    said = []
    try:
        for line in process.stdout:
            said.append(line)
            if waiting in line:
                break
    finally:
        watchdog.cancel()
    return "".join(said)


def test_a_crop_waits_for_a_term_held_elsewhere_then_does_it(site, downloaded, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(downloaded, out)
    other = StageClaims(out, FACES_CLAIM, owner=ELSEWHERE)
    held = other.try_claim("nurse")
    crop = subprocess.Popen(_command(site, out, "crop", "--workers", "1", "--busy", "wait"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = _until_it_waits(crop, "crop: nurse: in progress elsewhere (node-b, pid 4711), waiting")
        assert not Layout(out).faces("nurse").exists(), said  # never cropped while held elsewhere
    finally:
        held.release()
        rest, _ = crop.communicate(timeout=300)
    said += rest
    assert crop.returncode == 0, said
    assert re.search(r"^crop: nurse: done: .*; waited \d+ s for another worker$", said, re.MULTILINE), said
    assert f"crop: {len(SHARES)} done, 0 already done, 0 failed" in said


def test_a_download_registers_its_branch_after_another_runs_registration(site, tmp_path):
    out = tmp_path / "out"
    index = StageClaims(out, STUDY_INDEX_CLAIM, owner=ELSEWHERE).try_claim(None)
    download = subprocess.Popen(_command(site, out, "download", "--market", "en-GB", "--wave", "w1"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = _until_it_waits(download, "study-index: in progress elsewhere (node-b, pid 4711), waiting")
        assert read_design(out) is None, said  # it did not register while the other run was registering
        # meanwhile the other run registers its branch, as a run of gimg download --market en-US --wave w1 would
        write_design(out, StudyDesign((Wave("w1", "2026-01-01T00:00:00Z"),),
                                      (Branch("w1", "bing", "en-US", "w1/bing_en-US"),)))
    finally:
        index.release()
        rest, _ = download.communicate(timeout=300)
    assert download.returncode == 0, said + rest
    assert [(b.engine, b.market, b.folder) for b in read_design(out).branches] == [
        ("bing", "en-US", "w1/bing_en-US"), ("bing", "en-GB", "w1/bing_en-GB")], "neither run's branch is lost"
    assert sorted(Layout(out / "w1" / "bing_en-GB").terms_with("manifest")) == sorted(SHARES)


def test_a_killed_crop_is_taken_over_and_ends_as_a_clean_run(site, downloaded, tmp_path):
    victim_out, clean_out = tmp_path / "victim", tmp_path / "clean"
    shutil.copytree(downloaded, victim_out)
    shutil.copytree(downloaded, clean_out)
    slow = ["--workers", "1", "--detector", "hog", "--upsample", "2"]
    victim = subprocess.Popen(_command(site, victim_out, "crop", *slow), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    claims = victim_out / ".claims" / FACES_CLAIM
    deadline = time.monotonic() + 120
    while not (claims.is_dir() and list(claims.glob("*.claim"))):
        assert victim.poll() is None and time.monotonic() < deadline, "the crop never claimed a term"
        time.sleep(0.05)
    held = {json.loads(path.read_text())["term"] for path in claims.glob("*.claim")}
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    said = _run(_command(site, victim_out, "crop", *slow))
    for term in held:
        assert re.search(rf"^crop: {term}: done: .*took over from \(.+, pid {victim.pid}\): its process is gone",
                         said, re.MULTILINE), said
    _run(_command(site, clean_out, "crop", *slow))
    _same_trees(clean_out, victim_out)
