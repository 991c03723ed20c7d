"""A local image search engine on 127.0.0.1 that serves labelled faces in Bing's result markup and DuckDuckGo's
token page and i.js JSON, per engine and market when its site says so, and the demo."""

from __future__ import annotations

import html
import importlib.resources
import json
import random
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pandas as pd
from PIL import Image, ImageOps

from .engines.context import SearchContext
from .engines.duckduckgo import duckduckgo_region
from .errors import MissingInputError
from .layout import Layout, folder_name, write_csv
from .options import AnalyzeOptions, SampleOptions
from .validation import draw_sample, import_labels

# Demo terms with a share of women near their census share, so that the demo's scatter means something.
DEMO_SHARES = {
    "nurse": 0.9,
    "librarian": 0.8,
    "cashier": 0.7,
    "lawyer": 0.4,
    "software developer": 0.2,
    "electrician": 0.1,
}
DEMO_PER_TERM = 15
DEMO_SAMPLE = 60  # faces of the demo's study labelled, by import, from the site's truth
# The demo's raters: each answers from the truth, but swaps female and male on every k-th face (0: never).
DEMO_RATERS = {"site_truth_1": 0, "site_truth_2": 0, "site_truth_noisy": 8}
_CANVAS = 480
_FACE = 200
_PAGE_SIZE_DEFAULT = 35
_DUCKDUCKGO_PAGE = 100  # results per i.js answer, as DuckDuckGo gives them
INDEX_COLUMNS = ["term", "rank", "image", "source_face", "gender"]
SOURCE_COLUMNS = ["engine", "market"]  # in a site built per engine and market


def compose_scene(face: Image.Image, *, seed: int) -> Image.Image:
    """Place a tight face crop on a larger plain canvas, as a web photo of one person would frame it."""
    rng = random.Random(seed)
    tone = tuple(rng.randrange(90, 200) for _ in range(3))
    canvas = Image.new("RGB", (_CANVAS, int(_CANVAS * 0.75)), tone)
    face = ImageOps.fit(face.convert("RGB"), (_FACE, _FACE))
    x = rng.randrange(20, canvas.width - _FACE - 20)
    y = rng.randrange(10, canvas.height - _FACE - 10)
    canvas.paste(face, (x, y))
    return canvas


def read_face_labels(faces: Path) -> pd.DataFrame:
    """labels.csv (file, gender) of a folder of labelled face crops kept in its images/ subfolder."""
    labels_path = faces / "labels.csv"
    if not labels_path.is_file():
        raise MissingInputError(f"no labels.csv in {faces}: pass --faces with a folder of images/ and labels.csv")
    return pd.read_csv(labels_path)


def build_site(labels: pd.DataFrame, images: Path, site: Path, shares: dict[str, float], *, per_term: int = 10,
               seed: int = 0, reuse: bool = True) -> pd.DataFrame:
    """Write a site of composed images: for each term, per_term images whose share of women is known.

    Faces are drawn from labels (file, gender) without repeats within a term, or across terms when reuse is
    False. Returns the truth table (term, rank, image, source_face, gender), also written to site/index.csv.
    """
    pools, rng = _pools(labels, seed)
    (site / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for term, share in shares.items():
        rows += _term_images(term, share, per_term, pools, rng, reuse, images, site, f"{seed}/{term}")
    write_csv(site / "index.csv", rows, INDEX_COLUMNS)
    return pd.DataFrame(rows)


def build_branch_site(labels: pd.DataFrame, images: Path, site: Path,
                      shares: dict[tuple[str, str], dict[str, float]], *, per_term: int = 10,
                      seed: int = 0, prefix: str = "") -> pd.DataFrame:
    """A site that answers each (engine, market) with its own results: shares maps (engine, market) to the share
    of women per term (market "" for requests without one). Returns the truth table (INDEX_COLUMNS plus engine,
    market), also written to site/index.csv. The same seed and shares build the same images under the same names;
    prefix starts every image's name (to tell another wave's images apart).
    """
    pools, rng = _pools(labels, seed)
    (site / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for (engine, market), terms in shares.items():
        for term, share in terms.items():
            name = f"{prefix}{engine}_{market or 'any'}_"
            made = _term_images(term, share, per_term, pools, rng, True, images, site, f"{seed}/{name}{term}", name)
            rows += [{**row, "engine": engine, "market": market} for row in made]
    write_csv(site / "index.csv", rows, [*INDEX_COLUMNS, *SOURCE_COLUMNS])
    return pd.DataFrame(rows)


def _pools(labels: pd.DataFrame, seed: int) -> tuple[dict[str, list[str]], random.Random]:
    """The labelled faces by gender, shuffled, and the generator that draws from them."""
    pools = {gender: labels[labels.gender == gender].file.tolist() for gender in ("female", "male")}
    rng = random.Random(seed)
    for pool in pools.values():
        rng.shuffle(pool)
    return pools, rng


def _term_images(term: str, share: float, per_term: int, pools: dict[str, list[str]], rng: random.Random,
                 reuse: bool, images: Path, site: Path, scene_seed: str, prefix: str = "") -> list[dict]:
    """Compose one term's images (round(share x per_term) women) in a random order; their truth rows."""
    n_women = round(share * per_term)
    picks = [(face, "female") for face in _draw(pools["female"], n_women, rng, reuse)]
    picks += [(face, "male") for face in _draw(pools["male"], per_term - n_women, rng, reuse)]
    rng.shuffle(picks)
    rows = []
    for rank, (source, gender) in enumerate(picks, start=1):
        image = f"{prefix}{folder_name(term)}_{rank:03d}.jpg"
        with Image.open(images / source) as face:
            scene = compose_scene(face, seed=zlib.crc32(f"{scene_seed}/{rank}".encode()))
            scene.save(site / "img" / image, quality=90)
        rows.append({"term": term, "rank": rank, "image": image, "source_face": source, "gender": gender})
    return rows


def _draw(pool: list[str], count: int, rng: random.Random, reuse: bool) -> list[str]:
    if count > len(pool):
        raise ValueError(f"asked for {count} faces of a kind, but only {len(pool)} are left")
    if reuse:
        return rng.sample(pool, count)
    drawn, pool[:] = pool[:count], pool[count:]
    return drawn


def bing_page(results: list[dict], first: int) -> str:
    """Result markup as Bing's /images/async returns it: one a.iusc per result, with its m= JSON."""
    items = []
    for offset, result in enumerate(results):
        meta = {"murl": result["murl"], "purl": result["purl"], "turl": result["murl"], "t": result["title"]}
        items.append(
            f'<li data-idx="{first + offset}"><div class="iuscp isv"><div class="imgpt">'
            f'<a class="iusc" m="{html.escape(json.dumps(meta))}" href="/images/search?view=detailV2">'
            f'<div class="img_cont hoff"><img class="mimg" src="{html.escape(result["murl"])}" alt=""/></div>'
            f"</a></div></div></li>"
        )
    return f'<ul class="dgControl_list">{"".join(items)}</ul>' if items else ""


def duckduckgo_token(term: str) -> str:
    """The vqd token the local engine hands out for a term (tied to the query, as DuckDuckGo's is)."""
    return f"4-{zlib.crc32(term.encode('utf-8'))}-local"


@dataclass
class LocalEngine:
    """A running local engine: its base URL, every request it got as (path, query, headers), and its site, which
    switch() replaces (a new wave of results on the same server)."""

    url: str
    site: Path
    index: pd.DataFrame
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    def switch(self, site: Path) -> None:
        """Serve another site built by build_site or build_branch_site from now on."""
        self.site, self.index = site, _read_index(site)

    def queries(self, path: str) -> list[dict[str, str]]:
        """The query parameters of every request to path, in the order received."""
        return [query for seen, query, _ in self.requests if seen == path]


def _read_index(site: Path) -> pd.DataFrame:
    return pd.read_csv(site / "index.csv", dtype={"engine": str, "market": str}, keep_default_na=False)


class _Handler(BaseHTTPRequestHandler):
    engine: LocalEngine

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.engine.requests.append((url.path, {name: values[0] for name, values in query.items()}, dict(self.headers)))
        if url.path == "/images/async":
            self._results(query)
        elif url.path == "/" and "q" in query:
            token = duckduckgo_token(query["q"][0])
            self._send(200, "text/html; charset=utf-8", f'<html><script>vqd="{token}";</script></html>'.encode())
        elif url.path == "/i.js":
            self._duckduckgo(query)
        elif url.path.startswith("/img/"):
            self._file(self.engine.site / "img" / Path(unquote(url.path)).name, "image/jpeg")
        elif url.path.startswith("/page/"):
            self._send(200, "text/html", b"<html><body>a page that shows an image</body></html>")
        else:
            self._send(404, "text/plain", b"not found")

    def _rows(self, term: str, source: tuple[str, str]) -> pd.DataFrame:
        """A term's results in rank order, those of source (engine, market) when the site has them per engine."""
        index = self.engine.index
        chosen = index.term == term
        if "engine" in index.columns:
            chosen &= (index.engine == source[0]) & (index.market == source[1])
        return index[chosen].sort_values("rank")

    def _links(self, rows: pd.DataFrame) -> list[dict]:
        base = f"http://{self.headers['Host']}"
        return [{"murl": f"{base}/img/{quote(row.image)}", "purl": f"{base}/page/{quote(row.image)}.html"}
                for row in rows.itertuples()]

    def _results(self, query: dict[str, list[str]]) -> None:
        term = query.get("q", [""])[0]
        first = max(int(query.get("first", ["1"])[0]), 1)  # Bing's offsets count from 1
        count = int(query.get("count", [str(_PAGE_SIZE_DEFAULT)])[0])
        rows = self._rows(term, ("bing", query.get("mkt", [""])[0])).iloc[first - 1:first - 1 + count]
        results = [{**link, "title": term} for link in self._links(rows)]
        self._send(200, "text/html; charset=utf-8", bing_page(results, first).encode())

    def _duckduckgo(self, query: dict[str, list[str]]) -> None:
        """DuckDuckGo's i.js: 100 results a page from offset s, with a `next` link while more remain."""
        term = query.get("q", [""])[0]
        if query.get("vqd", [""])[0] != duckduckgo_token(term):
            self._send(403, "text/html", b"<html>invalid vqd</html>")
            return
        index = self.engine.index
        markets = set(index.market) if "market" in index.columns else {""}
        region = query.get("l", ["wt-wt"])[0]
        market = next((m for m in markets if m and duckduckgo_region(SearchContext(m)) == region), "")
        start = int(query.get("s", ["0"])[0])
        rows = self._rows(term, ("duckduckgo", market))
        results = [{"image": link["murl"], "url": link["purl"], "title": term}
                   for link in self._links(rows.iloc[start:start + _DUCKDUCKGO_PAGE])]
        answer: dict = {"results": results}
        if start + _DUCKDUCKGO_PAGE < len(rows):
            answer["next"] = f"i.js?q={quote(term)}&o=json&s={start + _DUCKDUCKGO_PAGE}&vqd={quote(query['vqd'][0])}"
        self._send(200, "application/json", json.dumps(answer).encode())

    def _file(self, path: Path, content_type: str) -> None:
        if path.is_file():
            self._send(200, content_type, path.read_bytes())
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the pipeline's own progress is what the user reads."""


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Run a server in a daemon thread until the block ends; yield its base URL."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def local_engine(site: Path) -> Iterator[LocalEngine]:
    """Serve a site built by build_site or build_branch_site on 127.0.0.1 (an ephemeral port), as Bing and as
    DuckDuckGo at once; yield the running engine."""
    engine = LocalEngine("", site, _read_index(site))
    handler = type("SiteHandler", (_Handler,), {"engine": engine})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as base_url:
        engine.url = base_url
        yield engine


@contextmanager
def serve_site(site: Path) -> Iterator[str]:
    """Serve a site built by build_site on 127.0.0.1 (an ephemeral port); yield its base URL."""
    with local_engine(site) as engine:
        yield engine.url


def demo_faces() -> Path:
    """The labelled portraits shipped with gimg for the demo (Face Research Lab, CC BY 4.0; see their SOURCE.md)."""
    return Path(str(importlib.resources.files("gimg") / "data" / "demo_faces"))


def prepare_demo_site(out: Path, faces: Path | None = None) -> tuple[Path, Path]:
    """Build the demo's site below out (once; a rerun reuses it); return its folder and its terms file.

    faces: a folder of images/ and labels.csv (file, gender); default: the portraits shipped with gimg.
    """
    faces = demo_faces() if faces is None else Path(faces)
    site = Layout(out).demo_site
    if not (site / "index.csv").is_file():
        build_site(read_face_labels(faces), faces / "images", site, DEMO_SHARES, per_term=DEMO_PER_TERM)
    terms = site / "terms.txt"
    terms.write_text("".join(f"{term}\n" for term in DEMO_SHARES), encoding="utf-8")
    return site, terms


def served_truth(out: Path, site: Path) -> dict[str, str]:
    """The true gender behind each image downloaded from a site that build_site made, by its path relative to out."""
    index = pd.read_csv(site / "index.csv")
    served = dict(zip(index["image"], index["gender"]))
    layout, genders = Layout(out), {}
    for term in layout.terms_with("manifest"):
        manifest = pd.read_csv(layout.manifest(term), dtype=str, keep_default_na=False)
        for row in manifest[manifest["status"] == "downloaded"].itertuples():
            path = (layout.downloaded(term) / row.file).relative_to(layout.out).as_posix()
            genders[path] = served[Path(unquote(urlsplit(row.url).path)).name]
    return genders


def truth_labels(sample: pd.DataFrame, genders: dict[str, str], raters: dict[str, int]) -> pd.DataFrame:
    """Labels of the sampled faces from the truth (item, rater, label): every rater gives the true gender, but a
    rater with k > 0 swaps female and male on every k-th face of the sample."""
    swap = {"female": "male", "male": "female"}
    truth = sample["image"].map(genders).tolist()
    rows = [{"item": item, "rater": rater, "label": swap[label] if every and position % every == every - 1 else label}
            for rater, every in raters.items() for position, (item, label) in enumerate(zip(sample["item"], truth))]
    return pd.DataFrame(rows, columns=["item", "rater", "label"])


def label_demo(out: Path, site: Path, options: AnalyzeOptions = AnalyzeOptions()) -> dict[str, int]:
    """The demo's labelling step: draw a sample of its counted faces, label it from the site's truth as DEMO_RATERS,
    and import those labels as a crowd's would be (site/labels.csv). Returns the answers imported per rater."""
    sample = draw_sample(out, SampleOptions(n=DEMO_SAMPLE), options)
    labels = truth_labels(sample, served_truth(out, site), DEMO_RATERS)
    write_csv(site / "labels.csv", labels.to_dict("records"), list(labels.columns))
    return import_labels(out, site / "labels.csv")
