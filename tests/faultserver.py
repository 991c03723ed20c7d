"""A fault-injection HTTP server on a loopback address: slow, resetting, throttling and lying servers, bad images.

Each path is a Behaviour: a function of (handler, n), n being how many times that path was asked for (1 first),
that writes the whole answer. The server counts requests per path and the most requests (and connections)
it ever had open at once, which the tests and the benchmark check against gimg's per-host limit.
"""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from PIL import Image

from gimg.localengine import serving

Behaviour = Callable[[BaseHTTPRequestHandler, int], None]


def send(handler: BaseHTTPRequestHandler, body: bytes, kind: str = "image/jpeg", status: int = 200,
         headers: dict[str, str] | None = None) -> None:
    """A plain complete answer."""
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def ok(body: bytes, kind: str = "image/jpeg") -> Behaviour:
    return lambda handler, n: send(handler, body, kind)


def slow(body: bytes, seconds: float) -> Behaviour:
    """Answers after `seconds` of silence."""

    def behave(handler, n):
        time.sleep(seconds)
        send(handler, body)

    return behave


def reset(then: bytes | None = None) -> Behaviour:
    """Resets the connection (TCP RST) without a byte; with `then`, only the first time."""

    def behave(handler, n):
        if then is not None and n > 1:
            return send(handler, then)
        handler.close_connection = True
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()

    return behave


def status_then(status: int, body: bytes, *, times: int = 1, retry_after: str | None = None) -> Behaviour:
    """Answers `status` (with Retry-After if given) the first `times` requests, then body."""

    def behave(handler, n):
        if n > times:
            return send(handler, body)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        send(handler, b"busy", "text/plain", status, headers)

    return behave


def redirect_loop(handler: BaseHTTPRequestHandler, n: int) -> None:
    send(handler, b"", "text/plain", 302, {"Location": urlsplit(handler.path).path})


def oversized(chunks: int, *, declared: bool) -> Behaviour:
    """chunks x 64 KiB of zeros: with a Content-Length, or streamed chunked without one."""

    def behave(handler, n):
        piece = b"\x00" * 65536
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        if declared:
            handler.send_header("Content-Length", str(chunks * len(piece)))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.close_connection = True
        try:
            for _ in range(chunks):
                handler.wfile.write(piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece))
            if not declared:
                handler.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up once it had enough: that is the point
            pass

    return behave


def cut_short(body: bytes) -> Behaviour:
    """Promises the whole body in Content-Length, sends half, and closes the connection."""

    def behave(handler, n):
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.close_connection = True

    return behave


# --- image bodies -------------------------------------------------------------------------------------------


def encode(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def photo(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A distinct RGB picture for each seed: a colour gradient crossed by a seed-placed bar."""
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", (gradient, gradient.rotate(90).resize(size), Image.new("L", size, (seed * 37) % 256)))
    bar = Image.new("RGB", (max(1, width // 6), height), ((seed * 91) % 256, 255 - (seed * 53) % 256, 40))
    image.paste(bar, ((seed * 13) % max(1, width - bar.width), 0))
    return image


def png_bomb(side: int = 40_000) -> bytes:
    """A valid 1-bit greyscale PNG of side x side pixels, all zero: ~200 MB of scanlines deflated to ~200 KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    deflate = zlib.compressobj(9)
    block = row * 256
    compressed = [deflate.compress(block) for _ in range(side // 256)]
    compressed += [deflate.compress(row * (side % 256)), deflate.flush()]
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(compressed)) + chunk(b"IEND", b"")


def cmyk_jpeg() -> bytes:
    return encode(photo(1).convert("CMYK"), "JPEG", quality=95)


def gray16_png() -> bytes:
    return encode(Image.linear_gradient("L").resize((80, 60)).convert("I").point(lambda v: v * 257).convert("I;16"),
                  "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("P", (64, 48), 0), Image.new("P", (64, 48), 1)]
    for frame in frames:
        frame.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated_jpeg() -> bytes:
    """A 96x64 JPEG whose EXIF says: rotate 90 degrees clockwise to display (so it shows as 64x96)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo(2), "JPEG", exif=exif, quality=95)


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect/></svg>'
HTML = b"<!DOCTYPE html><html><body>Hotlinking is not allowed</body></html>"


# --- the server ---------------------------------------------------------------------------------------------


@dataclass
class FaultServer:
    """A running server: its base URL, requests per path, and the peak of requests/connections open at once."""

    url: str
    routes: dict[str, Behaviour]
    latency: float = 0.0
    requests: Counter = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    max_connections: int = 0
    agents: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def link(self, path: str) -> str:
        return f"{self.url}{path}"

    def _count(self, attribute: str, step: int) -> int:
        with self._lock:
            value = getattr(self, attribute) + step
            setattr(self, attribute, value)
            peak = f"max_{attribute}"
            setattr(self, peak, max(getattr(self, peak), value))
            return value


@contextmanager
def serve(routes: dict[str, Behaviour], *, host: str = "127.0.0.1", latency: float = 0.0) -> Iterator[FaultServer]:
    """Serve routes (path -> Behaviour; 404 elsewhere) on host at an ephemeral port, in threads."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real image hosts

        def setup(self) -> None:
            super().setup()
            running._count("connections", 1)

        def finish(self) -> None:
            running._count("connections", -1)
            try:
                super().finish()
            except (OSError, ValueError):  # the behaviour already closed or reset the socket
                pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            with running._lock:
                running.requests[path] += 1
                running.agents.add(self.headers.get("User-Agent", ""))
                n = running.requests[path]
            running._count("in_flight", 1)
            try:
                if running.latency:
                    time.sleep(running.latency)
                behaviour = running.routes.get(path)
                if behaviour is None:
                    send(self, b"not found", "text/plain", 404)
                else:
                    behaviour(self, n)
            except OSError:  # the client gave up (timeout, body limit): nothing left to answer
                self.close_connection = True
            finally:
                running._count("in_flight", -1)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

        def handle_error(self, request, client_address) -> None:
            pass  # resets and hang-ups are what this server is for

    with serving(Server((host, 0), Handler)) as url:
        running = FaultServer(url, routes, latency)
        yield running
