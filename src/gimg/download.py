"""Download stage: search each term, fetch and validate every result, keep RGB JPEGs, write the manifest last."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from PIL import Image, ImageOps
from tqdm import tqdm

from .engines import Engine, SearchResult, make_engine
from .engines.base import USER_AGENT
from .errors import EngineError, GimgError
from .layout import QUARANTINE, Layout, atomic_path, write_csv
from .outcome import TermOutcome
from .parallel import default_workers

COLUMNS = ["rank", "url", "source_page", "engine", "time", "sha256", "status", "error", "file"]
MAX_BYTES = 50 * 2**20
MAX_SECONDS = 120
TIMEOUT = (10, 30)
MIN_SIDE = 32
JPEG_QUALITY = 95
THREADS = 16
PER_HOST = 4
_CHUNK = 64 * 1024
_MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)


@dataclass
class Record:
    """One manifest row: what happened to one search result."""

    rank: int
    url: str
    source_page: str
    engine: str
    time: str = ""
    sha256: str = ""
    status: str = "failed"
    error: str = ""
    file: str = ""


class FetchError(Exception):
    """A result could not be fetched (network, HTTP status, size); the message is the manifest's reason."""

    def __init__(self, reason: str, *, status: str = "failed") -> None:
        super().__init__(reason)
        self.status = status


def sniff(data: bytes) -> str | None:
    """The file extension of an image format recognised by its first bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((extension for magic, extension in _MAGIC if data.startswith(magic)), None)


def validate_image(data: bytes) -> Image.Image | str:
    """The RGB image (EXIF-rotated, first frame) that data holds, or the reason it is rejected."""
    kind = sniff(data)
    if kind is None:
        head = data[:64].lstrip().lower()
        if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
            return "not an image: the server sent HTML/XML"
        return f"not an image: unknown format starting {data[:8]!r}" if data else "not an image: empty body"
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit and width * height > limit:
                return f"decompression bomb: {width}x{height} is over {limit} pixels"
            if min(width, height) < MIN_SIDE:
                return f"too small: {width}x{height} (minimum {MIN_SIDE}x{MIN_SIDE})"
            return to_rgb(ImageOps.exif_transpose(opened))
    except Image.DecompressionBombError as error:
        return f"decompression bomb: {error}"
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... on bad data
        return f"undecodable {kind}: {error}"


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy: transparency on white, 16-bit and float grey scaled to 8 bits, CMYK/palette converted."""
    if image.mode.startswith("I") or image.mode == "F":
        grey = image.convert("I") if image.mode != "F" else image
        if image.mode.startswith("I;16") or grey.getextrema()[1] > 255:
            grey = grey.point(lambda value: value / 256)
        return grey.convert("L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def encode_jpeg(image: Image.Image) -> bytes:
    """image as a JPEG of quality 95."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def image_stem(result: SearchResult) -> str:
    """NNNN_<8 hex of sha1(url)>: the rank and URL fix the name, so reruns find earlier files."""
    return f"{result.rank:04d}_{hashlib.sha1(result.url.encode('utf-8')).hexdigest()[:8]}"


class Fetcher:
    """Fetches URLs over per-thread HTTP sessions, with at most PER_HOST requests to one host at a time."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._sessions: list[requests.Session] = []

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for session in self._sessions:
            session.close()

    def get(self, url: str) -> bytes:
        """The body at url; raises FetchError with a short reason."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("not an http(s) URL")
        with self._slot(parts.hostname):
            try:
                with self._session().get(url, stream=True, timeout=TIMEOUT) as response:
                    if response.status_code >= 400:
                        raise FetchError(f"HTTP {response.status_code}")
                    length = response.headers.get("Content-Length", "")
                    if length.isdigit() and int(length) > self.max_bytes:
                        raise self._too_large()
                    return self._read(response)
            except requests.RequestException as error:
                raise FetchError(f"{type(error).__name__}: {_short(error)}") from None

    def _read(self, response: requests.Response) -> bytes:
        chunks, size, deadline = [], 0, time.monotonic() + MAX_SECONDS
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large()
            if time.monotonic() > deadline:
                raise FetchError(f"download took longer than {MAX_SECONDS} s")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> FetchError:
        return FetchError(f"too large: over {self.max_bytes // 2**20} MB (not kept)", status="rejected")

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.8"})
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    @contextmanager
    def _slot(self, host: str) -> Iterator[None]:
        with self._lock:
            semaphore = self._hosts.setdefault(host, threading.BoundedSemaphore(PER_HOST))
        with semaphore:
            yield


def fetch_one(result: SearchResult, folder: Path, fetcher: Fetcher) -> Record:
    """Fetch, validate and keep one result under folder; never raises: failures are the record's status."""
    record = Record(result.rank, result.url, result.source_page, result.engine)
    stem = image_stem(result)
    target = folder / f"{stem}.jpg"
    try:
        if target.exists():
            fetched = datetime.fromtimestamp(target.stat().st_mtime, UTC)
            return _kept(record, target, target.read_bytes(), fetched)
        record.time = _now()
        data = fetcher.get(result.url)
        image = validate_image(data)
        if isinstance(image, str):
            name = f"{stem}.{sniff(data) or 'bin'}"
            _write(folder / QUARANTINE / name, data)
            record.sha256 = hashlib.sha256(data).hexdigest()
            record.status, record.error, record.file = "rejected", image, f"{QUARANTINE}/{name}"
            return record
        jpeg = encode_jpeg(image)
        _write(target, jpeg)
        return _kept(record, target, jpeg, None)
    except FetchError as error:
        record.status, record.error = error.status, str(error)
    except Exception as error:  # one bad result must not stop its term: the reason goes into the manifest
        record.status, record.error = "failed", f"{type(error).__name__}: {_short(error)}"
    return record


def _kept(record: Record, target: Path, jpeg: bytes, fetched: datetime | None) -> Record:
    if fetched is not None:
        record.time = fetched.isoformat(timespec="seconds")
    record.sha256 = hashlib.sha256(jpeg).hexdigest()
    record.status, record.file = "downloaded", target.name
    return record


def mark_duplicates(records: list[Record], folder: Path) -> None:
    """In rank order, keep the first file of each sha256; later copies become `duplicate` and their file goes."""
    first: dict[str, str] = {}
    for record in sorted(records, key=lambda record: (record.rank, record.url)):
        if record.status != "downloaded":
            continue
        original = first.setdefault(record.sha256, record.file)
        if original != record.file:
            (folder / record.file).unlink(missing_ok=True)
            record.status, record.error, record.file = "duplicate", f"same image as {original}", ""


def download_term(term: str, layout: Layout, engine: Engine, limit: int, fetcher: Fetcher) -> TermOutcome:
    """Search one term and download its results; an engine failure fails only this term."""
    if layout.manifest(term).exists():
        return TermOutcome(term, "skipped", "manifest.csv exists")
    try:
        results = engine.search(term, limit)
    except EngineError as error:
        return TermOutcome(term, "failed", str(error))
    folder = layout.downloaded(term)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(fetch_one, result, folder, fetcher) for result in results]
        for future in tqdm(as_completed(futures), total=len(futures), desc=term[:30], unit="image", leave=False):
            records.append(future.result())
    mark_duplicates(records, folder)
    records.sort(key=lambda record: (record.rank, record.url))
    write_csv(layout.manifest(term), [asdict(record) for record in records], COLUMNS)
    return TermOutcome(term, "done", _summary(records, len(results), limit))


def run_download(
    terms: list[str],
    out: Path,
    *,
    engine: str = "bing",
    engine_url: str | None = None,
    urls_csv: Path | None = None,
    limit: int = 500,
    workers: int | None = None,
) -> list[TermOutcome]:
    """Download up to `limit` images per term into OUT/Downloaded_images/<term>/, skipping finished terms."""
    if limit < 1:
        raise GimgError(f"--limit must be at least 1 (got {limit})")
    # Checked before any work: an unknown engine or unusable urls CSV raises GimgError here. The pause
    # between search pages defaults to 1 s, or 0 when engine_url is on 127.0.0.1/localhost.
    searcher = make_engine(engine, base_url=engine_url, urls_csv=urls_csv)
    terms = list(terms)
    layout = Layout(out)
    layout.remember_terms(terms)
    # Downloads are I/O: threads, not processes. `workers` bounds how many terms run at once.
    concurrent_terms = max(1, min(workers or default_workers(), len(terms)))
    with Fetcher() as fetcher, ThreadPoolExecutor(concurrent_terms) as pool:
        jobs = pool.map(lambda term: download_term(term, layout, searcher, limit, fetcher), terms)
        return list(tqdm(jobs, total=len(terms), desc="download", unit="term"))


def _summary(records: list[Record], found: int, limit: int) -> str:
    counts = {status: 0 for status in ("downloaded", "duplicate", "rejected", "failed")}
    for record in records:
        counts[record.status] += 1
    detail = ", ".join(f"{count} {status}" for status, count in counts.items())
    if found < limit:
        detail += f"; {found} of {limit} requested: the engine gave no more"
    return detail


def _write(target: Path, data: bytes) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""
