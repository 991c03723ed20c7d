"""The claims of one stage's terms below an output folder, and the rounds a stage driver runs its terms in."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from .claims import Claim, ClaimInfo, Owner, claim, folder_clock, is_stale, read_claim, stale_reason, try_claim
from .layout import WHOLE_STAGE, Layout
from .options import ExecutionOptions
from .outcome import TermOutcome

# work gets the terms this process holds (each with its claim) and returns the outcome of every one of them.
Work = Callable[[dict[str, Claim]], dict[str, TermOutcome]]


class StageClaims:
    """The claims of one stage below one output folder (OUT/.claims/<stage>/<term folder>.claim), owned here.

    execution gives the busy mode (wait for or skip terms held elsewhere) and stale_after.
    """

    def __init__(
        self,
        out: Path,
        stage: str,
        execution: ExecutionOptions = ExecutionOptions(),
        *,
        owner: Owner | None = None,
        check_pids: bool = True,
    ) -> None:
        self.layout = Layout(out)
        self.folder = self.layout.claims(stage)
        self.stage = stage
        self.stale_after = execution.stale_after
        self.busy = execution.busy
        self.owner = owner or Owner.here()
        self.check_pids = check_pids

    def path(self, term: str | None) -> Path:
        """The claim file of a term (None: of the whole stage)."""
        return self.layout.claim_path(self.stage, term)

    def try_claim(self, term: str | None) -> Claim | None:
        """Claim a term now (taking over a stale claim), or None if a live worker holds it."""
        return try_claim(
            self.path(term), stage=self.stage, term=term or WHOLE_STAGE, owner=self.owner,
            stale_after=self.stale_after, check_pids=self.check_pids,
        )

    def held_elsewhere(self, terms: Iterable[str | None]) -> dict[str | None, ClaimInfo]:
        """The terms that another live worker holds right now, with who and since when it last beat."""
        self.folder.mkdir(parents=True, exist_ok=True)
        now = folder_clock(self.folder)
        held = {}
        for term in terms:
            info = read_claim(self.path(term), now)
            if info is not None and info.owner.token != self.owner.token:
                if not is_stale(info, self.stale_after, self.owner, self.check_pids):
                    held[term] = info
        return held

    def wait_for(
        self, term: str | None, *, poll: float = 1.0, notify: Callable[[str], object] = lambda line: None
    ) -> Claim:
        """Claim a term (None: the whole stage), waiting while a live worker holds it; use it in a with block."""
        return claim(
            self.path(term), stage=self.stage, term=term or WHOLE_STAGE, owner=self.owner,
            stale_after=self.stale_after, check_pids=self.check_pids, poll=poll,
            on_wait=lambda holder: notify(f"{term or self.stage}: {busy_detail(holder)}, waiting"),
        )


def busy_detail(info: ClaimInfo) -> str:
    """The words for a term that another worker holds."""
    return f"in progress elsewhere ({info.owner.label()})"


def _notes(held: Claim, waited: float | None, stale_after: float) -> str:
    notes = []
    if waited is not None:
        notes.append(f"waited {waited:.0f} s for another worker")
    if held.took_over_from is not None:
        taken = held.took_over_from
        notes.append(f"took over from ({taken.owner.label()}): {stale_reason(taken, stale_after)}")
    if held.lost:
        notes.append("its claim was taken over meanwhile (this worker stalled longer than stale_after)")
    return "; ".join(notes)


def _with_notes(outcome: TermOutcome, notes: str) -> TermOutcome:
    if not notes:
        return outcome
    return replace(outcome, detail=f"{outcome.detail}; {notes}" if outcome.detail else notes)


def _done_before(terms: list[str], is_done: Callable[[str], bool], already: str | None) -> dict[str, TermOutcome]:
    """The terms an earlier run finished, skipped with the detail already (none when it is None)."""
    if already is None:
        return {}
    return {term: TermOutcome(term, "skipped", already) for term in terms if is_done(term)}


def claim_rounds(
    claims: StageClaims,
    terms: Iterable[str],
    work: Work,
    *,
    is_done: Callable[[str], bool],
    already: str | None = None,
    batch: int | None = None,
    poll: float = 2.0,
    notify: Callable[[str], object] = lambda line: None,
) -> list[TermOutcome]:
    """Do terms in rounds, each on the terms this process could claim; skip or wait for those held elsewhere.

    With already, the terms is_done finds done at the start are skipped with that detail, unclaimed (an earlier
    run did them). A round claims up to batch free terms (all when None), drops those that is_done finds finished
    (by another worker: "done elsewhere"), hands the rest to work and releases them after it. A term another live
    worker holds is skipped (claims.busy "skip") or waited for ("wait") until its holder releases it (usually
    done, so skipped then) or dies (then taken over after stale_after). Returns one outcome per term, in order.
    """
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    order = list(dict.fromkeys(terms))
    outcomes = _done_before(order, is_done, already)
    busy_since: dict[str, float] = {}
    pending = [term for term in order if term not in outcomes]
    while pending:
        elsewhere = claims.held_elsewhere(pending)  # one read of each claim file per round
        held: dict[str, Claim] = {}
        later: list[str] = []
        for term in pending:
            holder = elsewhere.get(term)
            if holder is not None:
                if claims.busy == "skip":
                    outcomes[term] = TermOutcome(term, "busy", busy_detail(holder))
                    continue
                if term not in busy_since:
                    busy_since[term] = time.monotonic()
                    notify(f"{term}: {busy_detail(holder)}, waiting")
                later.append(term)
                continue
            mine = None if batch is not None and len(held) >= batch else claims.try_claim(term)
            if mine is None:  # this round is full, or another worker claimed it a moment ago
                later.append(term)
            elif is_done(term):
                mine.release()
                waited = time.monotonic() - busy_since[term] if term in busy_since else None
                outcomes[term] = _with_notes(TermOutcome(term, "skipped", "done elsewhere"),
                                             _notes(mine, waited, claims.stale_after))
            else:
                held[term] = mine
        if held:
            waits = {term: time.monotonic() - busy_since[term] for term in held if term in busy_since}
            try:
                done = work(held)
            finally:
                for mine in held.values():
                    mine.release()
            for term, mine in held.items():
                outcomes[term] = _with_notes(done[term], _notes(mine, waits.get(term), claims.stale_after))
        elif later == pending:
            time.sleep(poll)  # nothing could be claimed: every remaining term is held by a live worker
        pending = later
    return [outcomes[term] for term in order]


def claim_each(
    claims: StageClaims,
    terms: Iterable[str],
    do_term: Callable[[str], TermOutcome],
    *,
    is_done: Callable[[str], bool],
    workers: int,
    already: str | None = None,
    poll: float = 2.0,
    notify: Callable[[str], object] = lambda line: None,
) -> list[TermOutcome]:
    """Do terms on `workers` threads, each thread claiming a term just before doing it and releasing it after.

    For a stage whose terms run side by side on threads (download): processes on k nodes then split the terms
    between them, where claim_rounds would let the first process claim them all. already, a term found done once
    claimed ("done elsewhere"), busy terms (claims.busy) and the notes: as claim_rounds. Returns one outcome per
    term, in the given order.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    order = list(dict.fromkeys(terms))
    outcomes = _done_before(order, is_done, already)
    queue = deque(term for term in order if term not in outcomes)
    busy_since: dict[str, float] = {}
    lock = threading.Lock()

    def attempt(term: str) -> TermOutcome | None:
        """The term's outcome, or None when a live worker elsewhere holds it and it is to be tried again."""
        mine = claims.try_claim(term)
        if mine is None:
            holder = read_claim(claims.path(term))
            if holder is None:  # released a moment ago: try again
                return None
            if claims.busy == "skip":
                return TermOutcome(term, "busy", busy_detail(holder))
            with lock:
                first = term not in busy_since
                busy_since.setdefault(term, time.monotonic())
            if first:
                notify(f"{term}: {busy_detail(holder)}, waiting")
            return None
        waited = time.monotonic() - busy_since[term] if term in busy_since else None
        try:
            outcome = TermOutcome(term, "skipped", "done elsewhere") if is_done(term) else do_term(term)
        finally:
            mine.release()
        return _with_notes(outcome, _notes(mine, waited, claims.stale_after))

    def run() -> None:
        while True:
            with lock:
                if not queue:
                    return
                term = queue.popleft()
            outcome = attempt(term)
            with lock:
                if outcome is not None:
                    outcomes[term] = outcome
                    continue
                queue.append(term)
                only_busy_left = all(waiting in busy_since for waiting in queue)
            if only_busy_left:
                time.sleep(poll)  # every remaining term is held by a live worker

    threads = min(workers, max(1, len(queue)))
    with ThreadPoolExecutor(threads) as pool:
        for thread in [pool.submit(run) for _ in range(threads)]:
            thread.result()  # a failure in do_term, which should return a failed outcome instead, surfaces here
    return [outcomes[term] for term in order]
