"""Claims on a shared output folder: at most one live worker, on any node, does a given term of a stage at a time.

A claim is a small JSON file (owner host, pid, random token, stage, term) published atomically with link(), so
a half-written claim is never seen and two claimants can never both create it; its mtime is the heartbeat, which
a background thread refreshes. A claim whose heartbeat is older than stale_after (or whose process is gone, when
it ran on this machine) is taken over: the taker first creates a break marker named after that claim's token
with O_CREAT|O_EXCL, so of several takers exactly one removes it. Only create, link, rename, unlink and utime are
used, which NFS performs atomically on the server; flock is never relied on. Ages are measured against the shared
folder's own clock (the mtime of a file just created there), so nodes with skewed clocks agree.

The guarantee holds while no process that holds or breaks a claim stalls for longer than stale_after: its
heartbeat thread touches its claims every stale_after / 4.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import GimgError

# Seconds without a heartbeat after which a claim is taken over (--stale-after); well above NFS's mtime resolution.
DEFAULT_STALE_AFTER = 60.0
_BREAK_LEVELS = 8  # nested break markers, each needed only if the breaker before it died within milliseconds


class ClaimTimeout(GimgError):
    """A claim stayed held by a live worker for longer than the caller would wait."""


@dataclass(frozen=True)
class Owner:
    """Who holds a claim: host and pid to tell people, a random token to tell owners apart for sure.

    machine identifies the boot and pid namespace: owners with the same machine share one pid space.
    """

    host: str
    pid: int
    token: str
    machine: str = ""

    @classmethod
    def here(cls) -> Owner:
        """This process, with a fresh token."""
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(8), _machine())

    def label(self) -> str:
        """Host and pid, as people read them."""
        return f"{self.host}, pid {self.pid}"


@dataclass(frozen=True)
class ClaimInfo:
    """A claim as read from its file: what it is for, who holds it, and seconds since its last heartbeat."""

    path: Path
    stage: str
    term: str
    owner: Owner
    age: float


def _machine() -> str:
    """The boot id and pid namespace of this process, or "" where /proc cannot tell them."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _process_gone(pid: int) -> bool:
    """True when no process with this pid runs here (or it is a zombie, killed and not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, owned by another user
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def folder_clock(directory: Path) -> float:
    """The current time on the clock of the file system that holds directory (the server's, on NFS)."""
    handle, name = tempfile.mkstemp(dir=directory, prefix=".clock.", suffix=".tmp")
    try:
        return os.fstat(handle).st_mtime
    finally:
        os.close(handle)
        os.unlink(name)


def _read(path: Path) -> tuple[dict, float] | None:
    """A claim or marker file's JSON and mtime, read through open() so NFS revalidates it; None if absent."""
    try:
        with path.open("rb") as handle:
            data = handle.read()
            mtime = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return None
    try:
        return json.loads(data), mtime
    except ValueError:  # never published half-written; an unreadable file is nobody's claim
        return {}, mtime


def read_claim(path: Path, now: float | None = None) -> ClaimInfo | None:
    """The claim at path, or None when there is none (or the file names no owner)."""
    found = _read(path)
    if found is None:
        return None
    record, mtime = found
    try:
        owner = Owner(**record["owner"])
        stage, term = record["stage"], record["term"]
    except (KeyError, TypeError):
        return None
    now = folder_clock(path.parent) if now is None else now
    return ClaimInfo(path, stage, term, owner, max(0.0, now - mtime))


def _publish(path: Path, record: dict) -> bool:
    """Create path holding record, all at once: False if it exists already."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as temporary:
            json.dump(record, temporary)
        try:
            os.link(name, path)
        except FileExistsError:
            return False
        except OSError:  # NFS may report a failure for a link whose reply was lost: the count tells the truth
            if os.stat(name).st_nlink != 2:
                raise
        return True
    finally:
        os.unlink(name)


def _create_marker(path: Path, owner: Owner) -> bool:
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w", encoding="utf-8") as marker:
        json.dump({"owner": asdict(owner)}, marker)
    return True


@dataclass
class Claim:
    """A claim this process holds; release() (or leaving its with block) gives it up.

    took_over_from names the owner of the stale claim this one replaced, if any. lost turns True when the
    heartbeat finds the file gone or another owner's (this process stalled past stale_after).
    """

    path: Path
    stage: str
    term: str
    owner: Owner
    stale_after: float
    took_over_from: ClaimInfo | None = None
    lost: bool = False
    _released: bool = field(default=False, repr=False)

    def beat(self) -> None:
        """Refresh the heartbeat, unless the claim is no longer this owner's."""
        current = _read(self.path)
        if current is None or current[0].get("owner", {}).get("token") != self.owner.token:
            self.lost = True
            return
        os.utime(self.path)

    def release(self) -> None:
        """Remove the claim file if it is still this owner's; idempotent."""
        if self._released:
            return
        self._released = True
        _HEARTBEAT.remove(self)
        current = _read(self.path)
        if current is not None and current[0].get("owner", {}).get("token") == self.owner.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class _Heartbeat:
    """One daemon thread per process that touches every held claim every stale_after / 4."""

    def __init__(self) -> None:
        self._held: dict[int, Claim] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def forget_after_fork(self) -> None:
        """A forked child holds none of its parent's claims, and has no heartbeat thread yet."""
        self._held, self._lock, self._wake, self._thread = {}, threading.Lock(), threading.Event(), None

    def add(self, claim: Claim) -> None:
        with self._lock:
            self._held[id(claim)] = claim
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gimg-claims-heartbeat", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, claim: Claim) -> None:
        with self._lock:
            self._held.pop(id(claim), None)

    def _run(self) -> None:
        while True:
            with self._lock:
                held = list(self._held.values())
            interval = min((claim.stale_after / 4 for claim in held), default=60.0)
            for claim in held:
                if not claim.lost:
                    try:
                        claim.beat()
                    except OSError:  # the shared folder hiccuped: the next beat tries again, well within stale_after
                        continue
            self._wake.wait(interval)
            self._wake.clear()


_HEARTBEAT = _Heartbeat()
os.register_at_fork(after_in_child=_HEARTBEAT.forget_after_fork)


def is_stale(info: ClaimInfo, stale_after: float, here: Owner, check_pids: bool = True) -> bool:
    """True when the claim's heartbeat is older than stale_after, or its process is gone from this machine."""
    if info.age > stale_after:
        return True
    same_pid_space = check_pids and bool(here.machine) and info.owner.machine == here.machine
    return same_pid_space and info.owner.pid != os.getpid() and _process_gone(info.owner.pid)


def stale_reason(info: ClaimInfo, stale_after: float) -> str:
    """Why a stale claim was taken over, in words."""
    if info.age > stale_after:
        return f"its heartbeat stopped {info.age:.0f} s ago"
    return "its process is gone"


def _break(info: ClaimInfo, stale_after: float, here: Owner, check_pids: bool) -> bool:
    """Remove the stale claim info describes, unless another taker is doing so; True if the way may be clear.

    Only the creator of the break marker for that claim's token may remove it, after checking under the marker
    that the file still holds that token and is still stale. A marker older than stale_after was left by a taker
    that died: the next level of marker decides who replaces it.
    """
    stem = f"{info.path.name}.{info.owner.token}.break"
    markers = [info.path.with_name(f"{stem}{level}") for level in range(_BREAK_LEVELS)]
    won = None
    for level, marker in enumerate(markers):
        if _create_marker(marker, here):
            won = level
            break
        found = _read(marker)
        if found is not None and folder_clock(marker.parent) - found[1] <= stale_after:
            return False  # a live taker is on it
    if won is None:
        return False
    try:
        current = read_claim(info.path)
        if current is not None and current.owner.token == info.owner.token and is_stale(
            current, stale_after, here, check_pids
        ):
            info.path.unlink(missing_ok=True)
        return True
    finally:
        for marker in reversed(markers[: won + 1]):
            marker.unlink(missing_ok=True)


def try_claim(
    path: Path,
    *,
    stage: str,
    term: str,
    owner: Owner | None = None,
    stale_after: float,
    check_pids: bool = True,
) -> Claim | None:
    """Claim path for owner now, taking over a stale claim; None when a live owner holds it. Never waits.

    check_pids: a claim made on this machine whose process is gone is stale at once (no wait for its heartbeat).
    """
    if stale_after <= 0:
        raise ValueError(f"stale_after must be positive, got {stale_after}")
    owner = owner or Owner.here()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"owner": asdict(owner), "stage": stage, "term": term}
    taken: ClaimInfo | None = None
    for _ in range(3):  # a takeover or a release in between can clear the way; a live holder ends it
        if _publish(path, record):
            held = Claim(path, stage, term, owner, stale_after, took_over_from=taken)
            _HEARTBEAT.add(held)
            return held
        info = read_claim(path)
        if info is None:
            continue
        if info.owner.token == owner.token:
            raise ValueError(f"{path} is already held by this owner: release it first")
        if not is_stale(info, stale_after, owner, check_pids) or not _break(info, stale_after, owner, check_pids):
            return None
        taken = info
    return None


def claim(
    path: Path,
    *,
    stage: str,
    term: str,
    owner: Owner | None = None,
    stale_after: float,
    check_pids: bool = True,
    poll: float = 1.0,
    timeout: float | None = None,
    on_wait: Callable[[ClaimInfo], object] = lambda holder: None,
) -> Claim:
    """Claim path, waiting while a live worker holds it: `with claim(path, stage=..., term=...) as held:`.

    on_wait is called once with the holder when the wait starts; after timeout seconds ClaimTimeout says who
    holds it. A holder that dies is taken over once its claim goes stale.
    """
    owner = owner or Owner.here()
    deadline = None if timeout is None else time.monotonic() + timeout
    holder: ClaimInfo | None = None
    while (held := try_claim(path, stage=stage, term=term, owner=owner, stale_after=stale_after,
                             check_pids=check_pids)) is None:
        current = read_claim(path)
        if current is not None and holder is None:
            on_wait(current)
        holder = current or holder
        if deadline is not None and time.monotonic() >= deadline:
            who = f" by {holder.owner.label()}" if holder else ""
            raise ClaimTimeout(f"{stage} of {term!r} is still in progress{who} after {timeout:g} s: try again later")
        time.sleep(poll)
    return held
