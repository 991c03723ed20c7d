"""A small HTTP server on 127.0.0.1 (ephemeral port) for tests; a route function answers each GET."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from gimg.localengine import serving

Reply = tuple[int, dict[str, str], bytes]
Route = Callable[[str, dict[str, str]], Reply]


def reply(body: bytes | str, kind: str = "text/html; charset=utf-8", status: int = 200, **headers: str) -> Reply:
    """A route's answer: status, headers (Content-Type first), body."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    return status, {"Content-Type": kind, **{name.replace("_", "-"): value for name, value in headers.items()}}, data


@dataclass
class Server:
    """A running server: its base URL, and every request it got as (path, query, headers)."""

    url: str
    log: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    def paths(self, prefix: str = "/") -> list[str]:
        return [path for path, _, _ in self.log if path.startswith(prefix)]


@contextmanager
def serve(route: Route) -> Iterator[Server]:
    """Serve route(path, query) on 127.0.0.1 in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {name: values[0] for name, values in parse_qs(parts.query).items()}
            running.log.append((parts.path, query, dict(self.headers)))
            status, headers, body = route(parts.path, query)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        running = Server(url)
        yield running
