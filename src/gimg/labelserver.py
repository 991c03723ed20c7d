"""The labelling page: a local web server on 127.0.0.1 where people label the sampled faces, one answer at a time.

Every answer is saved at once and atomically in validation/labels/<rater>.csv before the page hears back, so
closing the page or killing the server loses nothing. The page and its script are served from the package (no
CDN). Only the sample's own files are served, by item id. Requests must name this server in Host (against DNS
rebinding), and answers must come from this server's own page (Origin, JSON body) so no other site can post them.
"""

from __future__ import annotations

import functools
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw, ImageOps

from .errors import GimgError
from .layout import check_rater
from .options import ServeOptions
from .studyrates import LABELS
from .validation import read_rater_labels, read_sample, save_label, undo_label

HOST = "127.0.0.1"
MAX_BODY = 4096
IMAGE_SIDE = 900  # the whole image is sent at most this wide or high
_ASSETS = {"/": ("index.html", "text/html; charset=utf-8"), "/label.js": ("label.js", "text/javascript"),
           "/label.css": ("label.css", "text/css")}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Refused(GimgError):
    """A request the page refuses, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LabelSession:
    """The sample the page serves and the answers it records (no HTTP here)."""

    def __init__(self, out: Path, rater: str | None = None) -> None:
        self.out = Path(out)
        self.root = self.out.resolve()
        self.rater = rater
        self.sample = read_sample(out).sort_values("order").set_index("item", drop=False)
        self.items = set(self.sample.index)
        self._write = threading.Lock()

    def state(self, rater: str) -> dict:
        """What the page needs: the items in labelling order, the rater's answers, the labels to choose from."""
        check_rater(rater)
        labels = read_rater_labels(self.out, rater)
        answers = {item: label for item, label in zip(labels["item"], labels["label"]) if item in self.items}
        return {"rater": rater, "items": self.sample.index.tolist(), "answers": answers, "labels": list(LABELS)}

    def answer(self, rater: str, item: str, label: str) -> dict:
        """Save one answer (refused, and nothing written, for an unknown rater name, item or label)."""
        with self._write:
            save_label(self.out, check_rater(rater), item, label, items=self.items)
        return self.state(rater)

    def undo(self, rater: str) -> dict:
        """Take back the rater's latest answer; the state says which item it was."""
        with self._write:
            item, _ = undo_label(self.out, check_rater(rater))
        return {**self.state(rater), "undone": item}

    def _file(self, item: str, column: str) -> Path:
        if item not in self.items:
            raise Refused(404, f"unknown item {item!r}")
        path = (self.out / str(self.sample.at[item, column])).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise Refused(404, f"the {column} of item {item!r} is missing")
        return path

    def crop(self, item: str) -> bytes:
        """The face crop's JPEG bytes."""
        return self._file(item, "crop").read_bytes()

    def image(self, item: str) -> bytes:
        """The whole image, at most IMAGE_SIDE px, with the face's box drawn."""
        return _boxed(self._file(item, "image"), tuple(int(self.sample.at[item, side])
                                                       for side in ("left", "top", "right", "bottom")))


@functools.lru_cache(maxsize=64)
def _boxed(path: Path, box: tuple[int, int, int, int]) -> bytes:
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    scale = min(1.0, IMAGE_SIDE / max(image.size))
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    left, top, right, bottom = (round(value * scale) for value in box)
    width = max(2, round(max(image.size) / 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((left - width, top - width, right + width, bottom + width), outline=(0, 0, 0), width=width)
    draw.rectangle((left, top, right, bottom), outline=(255, 221, 0), width=width)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def _asset(name: str) -> bytes:
    return (resources.files("gimg") / "data" / "label" / name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    session: LabelSession
    server_version = "gimg-label"
    sys_version = ""

    def _allowed_hosts(self) -> set[str]:
        port = self.server.server_address[1]
        return {f"127.0.0.1:{port}", f"localhost:{port}"}

    def _check_host(self) -> None:
        if self.headers.get("Host", "") not in self._allowed_hosts():
            raise Refused(403, "this page answers only at its own address, http://127.0.0.1:PORT")

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._respond(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._respond(self._post)

    def _get(self) -> tuple[int, str, bytes]:
        url = urlsplit(self.path)
        if url.path in _ASSETS:
            name, kind = _ASSETS[url.path]
            return 200, kind, _asset(name)
        if url.path == "/api/state":
            rater = parse_qs(url.query).get("rater", [self.session.rater or ""])[0]
            return _json(self.session.state(rater))
        if url.path == "/api/config":
            return _json({"rater": self.session.rater})
        for prefix, fetch in (("/crop/", self.session.crop), ("/image/", self.session.image)):
            if url.path.startswith(prefix) and url.path.endswith(".jpg"):
                return 200, "image/jpeg", fetch(url.path[len(prefix):-len(".jpg")])
        raise Refused(404, f"no such page: {url.path}")

    def _post(self) -> tuple[int, str, bytes]:
        origin = self.headers.get("Origin")
        if origin not in {f"http://{host}" for host in self._allowed_hosts()}:
            raise Refused(403, f"answers are taken only from this server's own page, not from origin {origin!r}")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise Refused(415, "send answers as application/json")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            raise Refused(413, f"a request body must be 1 to {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length))
            rater = str(body["rater"])
        except (ValueError, KeyError, TypeError):
            raise Refused(400, "the body must be a JSON object with rater (and item, label to answer)") from None
        path = urlsplit(self.path).path
        if path == "/api/label":
            return _json(self.session.answer(rater, str(body.get("item", "")), str(body.get("label", ""))))
        if path == "/api/undo":
            return _json(self.session.undo(rater))
        raise Refused(404, f"no such action: {path}")

    def _respond(self, route: Callable[[], tuple[int, str, bytes]]) -> None:
        try:
            self._check_host()
            status, kind, body = route()
        except Refused as refused:
            status, kind, body = refused.status, "application/json", json.dumps({"error": str(refused)}).encode()
        except GimgError as error:  # bad input from the page: refused, and nothing was written
            status, kind, body = 400, "application/json", json.dumps({"error": str(error)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the terminal shows only the address to open."""


def _json(document: dict) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(document).encode("utf-8")


def make_label_server(out: Path, options: ServeOptions = ServeOptions()) -> ThreadingHTTPServer:
    """A labelling server for the sample under out, bound to 127.0.0.1 (not yet serving)."""
    session = LabelSession(out, options.rater)
    handler = type("LabelHandler", (_Handler,), {"session": session})
    try:
        return ThreadingHTTPServer((HOST, options.port), handler)
    except OSError as error:
        raise GimgError(f"cannot listen on {HOST}:{options.port} ({error.strerror}): pick another --port, or 0 "
                        "for any free one") from None


def page_url(server: ThreadingHTTPServer, rater: str | None = None) -> str:
    """The address to open in a browser."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/" + (f"?rater={rater}" if rater else "")


def serve_labels(out: Path, options: ServeOptions = ServeOptions(),
                 on_ready: Callable[[str], object] = print) -> None:
    """Serve the labelling page until interrupted; on_ready gets the address to open."""
    server = make_label_server(out, options)
    on_ready(page_url(server, options.rater))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:  # Ctrl-C is how a person stops the page; every answer is already on disk
        pass
    finally:
        server.server_close()
