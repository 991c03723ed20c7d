"""What a search asked: every request an engine sent (URL, parameters, User-Agent, cookie names, times), and the
run's context record built from them."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import requests

from .. import __version__
from ..layout import atomic_path
from .context import SearchContext

CONTEXT_FORMAT = "gimg-context/1"


def utc_timestamp(seconds: float | None = None) -> str:
    """An ISO 8601 UTC time stamp (now, or of `seconds` since the epoch), to the millisecond."""
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cookie_names(header: str | None) -> tuple[str, ...]:
    """The names in a Cookie header, in the order sent; the values are left out on purpose."""
    names = (part.split("=", 1)[0].strip() for part in (header or "").split(";"))
    return tuple(name for name in names if name)


@dataclass(frozen=True)
class RequestRecord:
    """One request an engine sent: the exact URL and its query parameters, what it said about itself, when.

    status is the HTTP status (None when no answer came, or when a browser made the request); error says why a
    request got no answer.
    """

    engine: str
    term: str
    url: str
    params: tuple[tuple[str, str], ...]
    user_agent: str
    accept_language: str | None
    cookie_names: tuple[str, ...]
    started: str
    seconds: float
    status: int | None = None
    error: str = ""
    method: str = "GET"

    def to_json(self) -> dict:
        """The request as a JSON object (parameters as [name, value] pairs, in the order sent)."""
        return {**asdict(self), "params": [list(pair) for pair in self.params], "cookie_names": list(self.cookie_names)}

    @classmethod
    def from_json(cls, data: Mapping) -> RequestRecord:
        """The request that to_json wrote."""
        return cls(**{**data, "params": tuple(tuple(pair) for pair in data["params"]),
                      "cookie_names": tuple(data["cookie_names"])})


def record_of(
    engine: str, term: str, request: requests.PreparedRequest, started: float, seconds: float,
    status: int | None = None, error: str = "",
) -> RequestRecord:
    """The record of a request as requests prepared it, i.e. as it went on the wire."""
    url = str(request.url)
    headers = request.headers
    return RequestRecord(
        engine=engine, term=term, url=url, params=tuple(parse_qsl(urlsplit(url).query, keep_blank_values=True)),
        user_agent=str(headers.get("User-Agent", "")), accept_language=headers.get("Accept-Language"),
        cookie_names=cookie_names(headers.get("Cookie")), started=utc_timestamp(started),
        seconds=round(seconds, 4), status=status, error=error, method=str(request.method),
    )


class RequestRecorder:
    """Collects the requests of one engine across threads, in the order they were sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        """Keep one request."""
        with self._lock:
            self._records.append(record)

    def add_response(self, engine: str, term: str, response: requests.Response, started: float) -> None:
        """Keep the request behind a response, and each redirect that led to it."""
        seconds = time.time() - started
        for hop in (*response.history, response):
            self.add(record_of(engine, term, hop.request, started, seconds, hop.status_code))

    def add_failure(
        self, engine: str, term: str, session: requests.Session, url: str, params: Mapping | None,
        options: Mapping, started: float, error: str,
    ) -> None:
        """Keep a request that got no answer, prepared as the session would have sent it."""
        request = requests.Request(
            "GET", url, params=params, headers=options.get("headers"), cookies=options.get("cookies")
        )
        self.add(record_of(engine, term, session.prepare_request(request), started, time.time() - started,
                           error=error))

    def records(self, term: str | None = None) -> list[RequestRecord]:
        """The requests kept so far (of one term, when given)."""
        with self._lock:
            return [record for record in self._records if term is None or record.term == term]


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes (the terms file a run searched)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class ContextRecord:
    """What one run asked one engine: the context, the User-Agent, gimg's version, times, terms file, requests.

    The download stage writes it as OUT/.../context.json (to_json) when a run ends; from_json reads it back.
    """

    engine: str
    context: SearchContext
    user_agent: str
    started: str
    finished: str
    terms_sha256: str
    requests: tuple[RequestRecord, ...] = ()
    gimg_version: str = __version__
    format: str = field(default=CONTEXT_FORMAT)
    run: str = ""
    source: str = ""

    def to_json(self) -> str:
        """The record as indented JSON text."""
        document = {
            "format": self.format, "run": self.run, "engine": self.engine, **self.context.to_json(),
            "source": self.source, "user_agent": self.user_agent, "gimg_version": self.gimg_version,
            "started": self.started, "finished": self.finished, "terms_sha256": self.terms_sha256,
            "requests": [request.to_json() for request in self.requests],
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ContextRecord:
        """The record that to_json wrote."""
        data = json.loads(text)
        context = SearchContext(data["market"], data["language"], data["safe_search"])
        return cls(
            engine=data["engine"], context=context, user_agent=data["user_agent"], started=data["started"],
            finished=data["finished"], terms_sha256=data["terms_sha256"],
            requests=tuple(RequestRecord.from_json(item) for item in data["requests"]),
            gimg_version=data["gimg_version"], format=data["format"], run=data.get("run", ""),
            source=data.get("source", ""),
        )


class RecordingEngine(Protocol):
    """An engine that records its requests: Bing, DuckDuckGo, Google and Google's basic endpoint."""

    name: str
    context: SearchContext
    user_agent: str
    recorder: RequestRecorder


def context_record(
    engine: RecordingEngine, *, started: str, finished: str, terms_sha256: str, run: str = ""
) -> ContextRecord:
    """The context record of a run of engine: its context, User-Agent and every request it has recorded."""
    return ContextRecord(engine=engine.name, context=engine.context, user_agent=engine.user_agent, started=started,
                         finished=finished, terms_sha256=terms_sha256, requests=tuple(engine.recorder.records()),
                         run=run, source=getattr(engine, "source", ""))  # only a replay says where its list came from


@dataclass(frozen=True)
class Run:
    """One run of `gimg download` or `gimg search`: its id (its UTC start time, safe in file names), its start as
    an ISO time stamp, and the sha256 of the terms it searched. Manifest rows and context records name it."""

    id: str
    started: str
    terms_sha256: str

    @classmethod
    def start(cls, terms: Path | list[str]) -> Run:
        """A run starting now, over a terms file or a list of terms (hashed as one term per line)."""
        now = time.time()
        moment = datetime.fromtimestamp(now, tz=timezone.utc)
        if isinstance(terms, Path):
            digest = sha256_of(terms)
        else:
            digest = hashlib.sha256("".join(f"{term}\n" for term in terms).encode("utf-8")).hexdigest()
        return cls(moment.strftime("%Y%m%dT%H%M%S.%fZ"), utc_timestamp(now), digest)


def save_context_record(path: Path, engine: RecordingEngine, run: Run) -> None:
    """Write the context record of run so far (finished: now), atomically; rewritten as the run goes on."""
    record = context_record(engine, started=run.started, finished=utc_timestamp(), terms_sha256=run.terms_sha256,
                            run=run.id)
    with atomic_path(Path(path)) as temporary:
        temporary.write_text(record.to_json(), encoding="utf-8")
