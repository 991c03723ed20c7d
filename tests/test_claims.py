"""Claims on a shared output folder, with real processes: exclusive, released by their owner, taken over once."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gimg.claims import ClaimTimeout, Owner, claim, folder_clock, read_claim, try_claim
from gimg.layout import Layout, folder_name
from gimg.options import ExecutionOptions
from gimg.outcome import TermOutcome
from gimg.stageclaims import StageClaims, claim_each, claim_rounds

WORKER = Path(__file__).parent / "claimworker.py"
MOUNTS = [Path(path) for path in os.environ.get("GIMG_TEST_MOUNTS", "").split(os.pathsep) if path][:2]
ELSEWHERE = Owner("node-b", 4242, "0123456789abcdef", "another-machine")


def _stale_claim(path: Path, owner: Owner = ELSEWHERE, age: float = 100.0) -> None:
    """A claim left by a worker on another node whose heartbeat stopped age seconds ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"owner": owner.__dict__, "stage": "crop", "term": "t"}), encoding="utf-8")
    now = folder_clock(path.parent)
    os.utime(path, (now - age, now - age))


def test_a_claim_is_exclusive_and_only_its_owner_releases_it(tmp_path):
    path = tmp_path / "t.claim"
    first = try_claim(path, stage="crop", term="t", stale_after=60)
    assert first is not None and first.took_over_from is None
    assert try_claim(path, stage="crop", term="t", stale_after=60) is None, "a live claim is not given twice"
    held = read_claim(path)
    assert held.owner == first.owner and (held.stage, held.term) == ("crop", "t")

    first.release()
    second = try_claim(path, stage="crop", term="t", stale_after=60)
    assert second is not None
    first.release()
    assert read_claim(path).owner == second.owner, "a stale handle does not remove a newer owner's claim"
    with second:
        pass
    assert not path.exists() and not list(tmp_path.iterdir()), "nothing left behind"


def test_claim_waits_for_the_holder_and_names_it_on_timeout(tmp_path):
    path = tmp_path / "t.claim"
    holder = try_claim(path, stage="crop", term="t", stale_after=60)
    seen = []
    with pytest.raises(ClaimTimeout, match=rf"crop of 't' is still in progress by .*pid {os.getpid()} after 0.3 s"):
        claim(path, stage="crop", term="t", stale_after=60, poll=0.05, timeout=0.3, on_wait=seen.append)
    assert [info.owner for info in seen] == [holder.owner]
    holder.release()
    with claim(path, stage="crop", term="t", stale_after=60, timeout=0.3) as held:
        assert read_claim(path).owner == held.owner
    assert not path.exists()


def test_the_heartbeat_keeps_a_live_claim_from_going_stale(tmp_path):
    path = tmp_path / "t.claim"
    with try_claim(path, stage="crop", term="t", stale_after=1.0) as held:
        time.sleep(2.5)
        assert try_claim(path, stage="crop", term="t", stale_after=1.0) is None
        assert read_claim(path).age < 1.0
        assert not held.lost


def test_a_stale_claim_is_taken_over_and_its_owner_named(tmp_path):
    path = tmp_path / "t.claim"
    _stale_claim(path, age=100)
    assert try_claim(path, stage="crop", term="t", stale_after=200) is None, "not stale yet at 200 s"
    taken = try_claim(path, stage="crop", term="t", stale_after=30)
    assert taken is not None and taken.took_over_from.owner == ELSEWHERE
    assert read_claim(path).owner == taken.owner
    taken.release()


def _slow_unlink(unlink):
    """Path.unlink that pauses before removing a claim: it widens the window in which two takers could collide."""

    def slow(path: Path, missing_ok: bool = False) -> None:
        if path.suffix == ".claim":
            time.sleep(0.05)
        unlink(path, missing_ok=missing_ok)

    return slow


def _take(paths: list[str], start, results) -> None:
    Path.unlink = _slow_unlink(Path.unlink)
    for path in paths:
        start.wait()  # all takers try each stale claim at the same moment
        claim = try_claim(Path(path), stage="crop", term="t", stale_after=30)
        results.put((path, None if claim is None else claim.owner.token))


@pytest.mark.parametrize("leftover", ["none", "orphan break marker"])
def test_of_many_processes_taking_over_one_stale_claim_exactly_one_wins(tmp_path, leftover):
    paths = [tmp_path / f"t{number}.claim" for number in range(5)]
    for path in paths:
        _stale_claim(path)
        if leftover != "none":  # a taker that died mid-takeover left its marker: the next level decides
            marker = path.with_name(f"{path.name}.{ELSEWHERE.token}.break0")
            marker.write_text("{}", encoding="utf-8")
            os.utime(marker, (time.time() - 100, time.time() - 100))
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(6), context.Queue()
    takers = [context.Process(target=_take, args=([str(p) for p in paths], start, results)) for _ in range(6)]
    for taker in takers:
        taker.start()
    tokens: dict[str, list] = {str(path): [] for path in paths}
    for _ in range(len(paths) * len(takers)):
        path, token = results.get(timeout=60)
        tokens[path].append(token)
    for taker in takers:
        taker.join(timeout=60)
    for path in paths:
        winners = [token for token in tokens[str(path)] if token is not None]
        assert len(winners) == 1, tokens
        assert read_claim(path).owner.token == winners[0]
    assert not [name for name in os.listdir(tmp_path) if ".break" in name or name.endswith(".tmp")]


def test_a_fresh_break_marker_means_another_taker_is_on_it(tmp_path):
    path = tmp_path / "t.claim"
    _stale_claim(path)
    path.with_name(f"{path.name}.{ELSEWHERE.token}.break0").write_text("{}", encoding="utf-8")
    assert try_claim(path, stage="crop", term="t", stale_after=30) is None


def _claim_and_die(path: str) -> None:
    try_claim(Path(path), stage="crop", term="t", stale_after=60)
    os._exit(0)  # no release, no cleanup: as a kill would leave it


def test_the_claim_of_a_process_gone_from_this_machine_is_stale_at_once(tmp_path):
    path = tmp_path / "t.claim"
    process = multiprocessing.get_context("spawn").Process(target=_claim_and_die, args=(str(path),))
    process.start()
    process.join(timeout=60)
    dead = read_claim(path)
    assert dead.owner.pid == process.pid and dead.age < 60
    by_heartbeat = try_claim(path, stage="crop", term="t", stale_after=60, check_pids=False)
    assert by_heartbeat is None, "by heartbeat alone it is live"
    taken = try_claim(path, stage="crop", term="t", stale_after=60)
    assert taken is not None and taken.took_over_from.owner.pid == process.pid
    taken.release()


def test_claim_rounds_wait_skip_and_report(tmp_path):
    """One process: a term another owner holds is skipped with its name, or waited for until released."""
    terms = ["alpha", "beta", "gamma"]
    other = StageClaims(tmp_path, "crop", owner=Owner("node-b", 7, "feedfacefeedface", "another-machine"))
    skipping, waiting = (StageClaims(tmp_path, "crop", ExecutionOptions(busy=busy)) for busy in ("skip", "wait"))
    held = other.try_claim("beta")
    done: list[str] = []

    def work(claimed: dict) -> dict[str, TermOutcome]:
        done.extend(claimed)
        if "gamma" in claimed:
            held.release()  # the other worker finishes beta while this one works on gamma
            (tmp_path / "beta.done").touch()
        return {term: TermOutcome(term, "done", "3 faces") for term in claimed}

    def is_done(term: str) -> bool:
        return (tmp_path / f"{term}.done").exists()

    skipped = claim_rounds(skipping, terms, lambda claimed: {t: TermOutcome(t, "done") for t in claimed},
                           is_done=is_done)
    assert [o.status for o in skipped] == ["done", "busy", "done"]
    assert skipped[1].detail == "in progress elsewhere (node-b, pid 7)"
    lines: list[str] = []
    waited = claim_rounds(waiting, terms, work, is_done=is_done, batch=1, poll=0.05, notify=lines.append)
    assert [(o.status, o.detail.split(";")[0]) for o in waited] == [
        ("done", "3 faces"), ("skipped", "done elsewhere"), ("done", "3 faces")
    ]
    assert "waited" in waited[1].detail and lines == ["beta: in progress elsewhere (node-b, pid 7), waiting"]
    assert done == ["alpha", "gamma"]
    assert not list((tmp_path / ".claims" / "crop").iterdir())


def test_claim_each_skips_or_waits_for_a_term_held_elsewhere(tmp_path):
    """One thread: the busy term is put back behind the others, and found done once its holder lets it go."""
    other = StageClaims(tmp_path, "download", owner=Owner("node-b", 7, "feedfacefeedface", "another-machine"))
    held = other.try_claim("beta")
    done: list[str] = []

    def do_term(term: str) -> TermOutcome:
        done.append(term)
        if term == "gamma":
            held.release()
            (tmp_path / "beta.done").touch()
        return TermOutcome(term, "done", "60 images")

    def is_done(term: str) -> bool:
        return (tmp_path / f"{term}.done").exists()

    terms = ["alpha", "beta", "gamma"]
    skipping = StageClaims(tmp_path, "download", ExecutionOptions(busy="skip"))
    skipped = claim_each(skipping, terms, lambda term: TermOutcome(term, "done"), is_done=is_done, workers=1)
    assert [(o.status, o.detail) for o in skipped] == [
        ("done", ""), ("busy", "in progress elsewhere (node-b, pid 7)"), ("done", "")
    ]
    lines: list[str] = []
    waiting = StageClaims(tmp_path, "download", ExecutionOptions(busy="wait"))
    waited = claim_each(waiting, terms, do_term, is_done=is_done, workers=1, poll=0.05, notify=lines.append)
    assert [(o.status, o.detail.split(";")[0]) for o in waited] == [
        ("done", "60 images"), ("skipped", "done elsewhere"), ("done", "60 images")
    ]
    assert "waited" in waited[1].detail and lines == ["beta: in progress elsewhere (node-b, pid 7), waiting"]
    assert done == ["alpha", "gamma"]
    assert not list((tmp_path / ".claims" / "download").iterdir())


class Recording(StageClaims):
    """Stage claims that note every term they are asked to claim."""

    tried: list[str]

    def try_claim(self, term):
        self.tried.append(term)
        return super().try_claim(term)


@pytest.mark.parametrize("runner", ["claim_rounds", "claim_each"])
def test_terms_an_earlier_run_finished_are_skipped_without_a_claim(tmp_path, runner):
    (tmp_path / "alpha.done").touch()
    claims = Recording(tmp_path, "crop")
    claims.tried = []

    def is_done(term: str) -> bool:
        return (tmp_path / f"{term}.done").exists()

    def do_term(term: str) -> TermOutcome:
        return TermOutcome(term, "done", "3 faces")

    if runner == "claim_rounds":
        outcomes = claim_rounds(claims, ["alpha", "beta"], lambda held: {term: do_term(term) for term in held},
                                is_done=is_done, already="faces.csv is fresh")
    else:
        outcomes = claim_each(claims, ["alpha", "beta"], do_term, is_done=is_done, workers=2,
                              already="faces.csv is fresh")
    assert [(o.status, o.detail) for o in outcomes] == [("skipped", "faces.csv is fresh"), ("done", "3 faces")]
    assert claims.tried == ["beta"]


def _worker(out: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(out), str(out / "terms.txt"), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _outcomes(process: subprocess.Popen) -> list[dict]:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    return [json.loads(line) for line in stdout.splitlines()]


def _log(out: Path) -> list[tuple[str, int]]:
    lines = [line for log in out.glob("log-*.txt") for line in log.read_text(encoding="utf-8").splitlines()]
    return [(term, int(pid)) for term, pid in (line.split("\t") for line in lines)]


@pytest.fixture
def folders(tmp_path):
    """Two paths of one folder, one per worker: tmp_path twice, or the same folder through two mounts of a
    shared file system (GIMG_TEST_MOUNTS=A:B, such as two sshfs mounts, each with a cache of its own)."""
    if not MOUNTS:
        yield tmp_path, tmp_path
        return
    first, second = (mount / f"gimg-claims-{os.getpid()}-{tmp_path.name}" for mount in MOUNTS)
    first.mkdir()
    yield first, second
    shutil.rmtree(first)


@pytest.mark.parametrize("rounds", [["--batch", "2"], ["--threads", "3"]], ids=["claim_rounds", "claim_each"])
@pytest.mark.parametrize("busy", ["wait", "skip"])
def test_two_processes_on_one_folder_do_every_term_once(folders, busy, rounds):
    out = folders[0]
    terms = [f"term {number:02d}" for number in range(16)]
    (out / "terms.txt").write_text("\n".join(terms), encoding="utf-8")
    workers = [_worker(folder, "--busy", busy, *rounds, "--meet") for folder in folders]
    outcomes = {worker.pid: _outcomes(worker) for worker in workers}

    log = _log(out)
    assert sorted(term for term, _ in log) == terms, "every term done exactly once"
    assert {pid for _, pid in log} == set(outcomes), "both processes worked"
    for pid, results in outcomes.items():
        assert [result["term"] for result in results] == terms
        mine = {term for term, by in log if by == pid}
        for result in results:
            if result["term"] in mine:
                assert result["status"] == "done"
            elif busy == "wait":
                assert (result["status"], result["detail"].split(";")[0]) == ("skipped", "done elsewhere")
            else:
                assert (result["status"], result["detail"]) in (
                    ("skipped", "done elsewhere"), ("busy", _holder(outcomes, pid))
                )
    assert all((out / "results" / f"{folder_name(term)}.csv").exists() for term in terms)
    claims = out / ".claims" / "crop"
    assert not list(claims.iterdir()), "every claim released, no marker or temporary file left"


def _holder(outcomes: dict, pid: int) -> str:
    other = next(other for other in outcomes if other != pid)
    return f"in progress elsewhere ({os.uname().nodename}, pid {other})"


@pytest.mark.parametrize("check_pids", [False, True], ids=["stale heartbeat", "process gone"])
def test_sigkill_a_worker_holding_claims_and_another_takes_them_over(folders, check_pids):
    out, other_out = folders
    (out / "terms.txt").write_text("alpha\nbeta\n", encoding="utf-8")
    pid_option = [] if check_pids else ["--no-check-pids"]
    victim = _worker(out, "--hang", "alpha", "--stale-after", "5", *pid_option)
    deadline = time.monotonic() + 60
    while not (out / f"hanging-{victim.pid}").exists():
        assert victim.poll() is None and time.monotonic() < deadline, "the worker never claimed alpha"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL

    claims = StageClaims(other_out, "crop", ExecutionOptions(stale_after=5), check_pids=check_pids)
    held = claims.held_elsewhere(["alpha", "beta"])
    if check_pids:
        assert held == {}, "a claim whose process is gone from this machine is not in progress"
    else:
        assert {term: info.owner.pid for term, info in held.items()} == {"alpha": victim.pid, "beta": victim.pid}

    heir = _worker(other_out, "--stale-after", "5", *pid_option)
    results = _outcomes(heir)
    reason = "its process is gone" if check_pids else "its heartbeat stopped"
    for result in results:
        assert result["status"] == "done"
        assert f"took over from ({os.uname().nodename}, pid {victim.pid}): {reason}" in result["detail"]
    assert sorted(_log(out)) == [("alpha", heir.pid), ("beta", heir.pid)]
    assert not list((out / ".claims" / "crop").iterdir())


def _remember_one_by_one(out: str, terms: list[str], start) -> None:
    start.wait()
    for term in terms:
        Layout(Path(out)).remember_terms([term])


def test_two_processes_adding_terms_to_the_index_at_once_lose_none(tmp_path):
    """Each addition reads, merges and writes terms.csv: without the index's claim, one process's write drops
    the other's terms (this test then fails)."""
    lists = [[f"{name} {number}" for number in range(40)] for name in ("nurse", "pilot")]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [context.Process(target=_remember_one_by_one, args=(str(tmp_path), terms, start)) for terms in lists]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    known = Layout(tmp_path).known_terms()
    assert sorted(known) == sorted(lists[0] + lists[1])
    for terms in lists:
        assert [term for term in known if term in terms] == terms, "each process's terms in the order it added them"
    assert not list(Layout(tmp_path).claims("terms-index").iterdir()), "the index's claim released"
