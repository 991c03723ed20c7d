"""Polite concurrent HTTP: a host-aware work queue, timeouts, a body limit, retries with backoff and Retry-After."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Generic, TypeVar
from urllib.parse import urlsplit
from urllib.request import getproxies

import requests
from requests.adapters import HTTPAdapter

from .engines.base import USER_AGENT, retry_after_seconds

log = logging.getLogger(__name__)

Job = TypeVar("Job")
_CHUNK = 64 * 1024
_RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class FetchOptions:
    """How downloads behave on the network; the defaults suit real servers, tests shrink the waits."""

    connections: int = 64  # downloads in flight at once, over all hosts
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # longest silence while waiting for bytes
    max_seconds: float = 120.0  # longest time for one whole body
    max_bytes: int = 50 * 2**20
    attempts: int = 3  # tries per URL for timeouts, resets, 5xx and 429
    backoff: float = 1.0  # the wait before the second try; doubles each try, with +-50 % jitter
    max_retry_after: float = 60.0  # a server asking for a longer pause gets no more tries

    def __post_init__(self) -> None:
        if self.connections < 1 or self.attempts < 1:
            raise ValueError("connections and attempts must be at least 1")


class FetchError(Exception):
    """A URL could not be fetched; the message is the manifest's reason.

    status is the manifest status ("failed", or "rejected" for a body over the limit); retry_after is set
    for errors worth another try (seconds the server asked for, or 0 to use the backoff).
    """

    def __init__(self, reason: str, *, status: str = "failed", retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


class HostQueue(Generic[Job]):
    """Hands out jobs so that no host has more than per_host in flight, round robin over hosts.

    A job can wait until a given time (a retry's backoff), and a whole host can be paused (Retry-After).
    """

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._ready = threading.Condition()
        self._waiting: OrderedDict[str, deque[tuple[float, Job]]] = OrderedDict()
        self._active: dict[str, int] = {}
        self._paused: dict[str, float] = {}
        self._closed = False

    def put(self, host: str, job: Job, not_before: float = 0.0) -> None:
        with self._ready:
            self._waiting.setdefault(host, deque()).append((not_before, job))
            self._ready.notify()

    def take(self) -> tuple[str, Job] | None:
        """The next job that may start now, waiting as needed; None once closed."""
        with self._ready:
            while not self._closed:
                now = time.monotonic()
                wake = now + 1.0
                for host, jobs in self._waiting.items():
                    if self._active.get(host, 0) >= self.per_host:
                        continue
                    if self._paused.get(host, 0.0) > now:
                        wake = min(wake, self._paused[host])
                        continue
                    for index, (not_before, job) in enumerate(jobs):
                        if not_before <= now:
                            del jobs[index]
                            if not jobs:
                                del self._waiting[host]
                            else:
                                self._waiting.move_to_end(host)
                            self._active[host] = self._active.get(host, 0) + 1
                            return host, job
                        wake = min(wake, not_before)
                self._ready.wait(max(0.0, wake - now))
            return None

    def done(self, host: str, pause: float = 0.0) -> None:
        """A job of host finished its attempt; pause > 0 keeps the host idle that many seconds."""
        with self._ready:
            self._active[host] -= 1
            if pause > 0:
                log.debug(f"download: pausing {host} for {pause:g} s, as it asked (Retry-After)")
                self._paused[host] = max(self._paused.get(host, 0.0), time.monotonic() + pause)
            self._ready.notify_all()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class _NoCookies(DefaultCookiePolicy):
    """Image hosts get no cookies back: no tracking across sites, and no shared jar for threads to fight over."""

    def set_ok(self, cookie, request) -> bool:
        return False


class Fetcher:
    """One HTTP attempt at a time per call, over a shared connection pool of at most per_host sockets per host."""

    def __init__(self, options: FetchOptions, per_host: int) -> None:
        self.options = options
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.8"})
        self.session.cookies.set_policy(_NoCookies())
        self.session.max_redirects = 10
        # requests reads the environment (proxies, CA bundle, ~/.netrc) again for every request: up to a quarter of
        # a fetch's CPU. The CA bundle is read once here; proxies, when there are any, are left to requests;
        # image hosts get no ~/.netrc passwords.
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.session.trust_env = bool(getproxies())
        # pool_block: a thread never opens a 5th socket to a host; HostQueue already keeps it from trying.
        adapter = HTTPAdapter(pool_connections=256, pool_maxsize=per_host, pool_block=True, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.session.close()

    def get(self, url: str) -> bytes:
        """The body at url, in one attempt; raises FetchError (with retry_after set when a retry may help)."""
        options = self.options
        try:
            with self.session.get(
                url, stream=True, timeout=(options.connect_timeout, options.read_timeout)
            ) as response:
                if response.status_code >= 400:
                    raise _status_error(response, options.max_retry_after)
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > options.max_bytes:
                    raise self._too_large()
                return self._read(response)
        except requests.TooManyRedirects:
            raise FetchError(f"redirect loop: more than {self.session.max_redirects} redirects") from None
        except requests.Timeout as error:
            kind = "connect" if isinstance(error, requests.ConnectTimeout) else "read"
            raise FetchError(f"{kind} timeout", retry_after=0.0) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            raise FetchError(f"connection error: {_cause(error)}", retry_after=0.0) from None
        except requests.RequestException as error:
            raise FetchError(f"{type(error).__name__}: {_cause(error)}") from None

    def backoff(self, attempt: int, retry_after: float) -> float:
        """Seconds before try number attempt + 1: the server's Retry-After, or exponential backoff with jitter."""
        if retry_after > 0:
            return retry_after
        return self.options.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)

    def _read(self, response: requests.Response) -> bytes:
        chunks, size = [], 0
        deadline = time.monotonic() + self.options.max_seconds
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > self.options.max_bytes:
                raise self._too_large()
            if time.monotonic() > deadline:
                raise FetchError(f"too slow: body not complete after {self.options.max_seconds:g} s")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> FetchError:
        return FetchError(f"too large: over {self.options.max_bytes} bytes (not kept)", status="rejected")


def host_of(url: str) -> str | None:
    """The host (and port) that url would connect to, or None when it is not an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.netloc.rsplit("@", 1)[-1].lower()


def _status_error(response: requests.Response, cap: float) -> FetchError:
    status = response.status_code
    if status not in _RETRY_STATUSES:
        return FetchError(f"HTTP {status}")
    wait = retry_after_seconds(response.headers.get("Retry-After")) if status in (429, 503) else None
    if wait is not None and wait > cap:
        return FetchError(f"HTTP {status}: Retry-After {wait:g} s is over the {cap:g} s limit")
    return FetchError(f"HTTP {status}", retry_after=wait or 0.0)


def _cause(error: Exception) -> str:
    """A short reason for a requests error: 'Connection reset by peer', 'IncompleteRead', or its first line."""
    text = str(error)
    for known in ("Connection reset by peer", "Connection refused", "Remote end closed connection", "IncompleteRead"):
        if known in text:
            return known
    lines = text.strip().splitlines()
    return lines[0][:160] if lines else type(error).__name__
