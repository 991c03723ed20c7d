"""The download stage against a Bing-shaped server on 127.0.0.1 that serves real face JPEGs and bad files."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
from datetime import datetime
from pathlib import Path

import pytest
from localhttp import reply, serve
from PIL import Image

from gimg.download import COLUMNS, run_download
from gimg.errors import GimgError
from gimg.layout import Layout
from gimg.options import DownloadOptions, ExecutionOptions
from gimg.validate import validate_image

CAPTCHA = "<html><body>Please complete the CAPTCHA below</body></html>"


def _encode(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(fixtures) -> dict[str, bytes]:
    """The bodies the server offers, by file name."""
    faces = sorted((fixtures / "faces" / "images").glob("*.jpg"))
    face = Image.open(faces[0]).convert("RGB")
    alpha = face.copy()
    alpha.putalpha(Image.linear_gradient("L").resize(face.size))
    whole = faces[2].read_bytes()
    return {
        "face0.jpg": faces[0].read_bytes(),
        "face1.jpg": faces[1].read_bytes(),
        "alpha.png": _encode(alpha, "PNG"),
        "cmyk.jpg": _encode(face.convert("CMYK"), "JPEG"),
        "truncated.jpg": whole[: len(whole) // 2],
        "page.jpg": b"<!DOCTYPE html><html><body>Hotlinking not allowed</body></html>",
        "face0-copy.jpg": faces[0].read_bytes(),
        "tiny.png": _encode(Image.new("RGB", (16, 16), "red"), "PNG"),
    }


# rank -> (file on the server, or a URL; expected status; expected error fragment)
EXPECTED = {
    1: ("face0.jpg", "downloaded", ""),
    2: ("face1.jpg", "downloaded", ""),
    3: ("alpha.png", "downloaded", ""),
    4: ("cmyk.jpg", "downloaded", ""),
    5: ("truncated.jpg", "rejected", "undecodable jpg"),
    6: ("page.jpg", "rejected", "not an image: the server sent HTML"),
    7: ("missing.jpg", "failed", "HTTP 404"),
    8: ("face0-copy.jpg", "duplicate", "same image as 0001_"),
    9: ("tiny.png", "rejected", "too small: 16x16"),
    10: ("ftp://files.test/x.jpg", "failed", "not an http(s) URL"),
}


@pytest.fixture
def server(files):
    """A Bing-shaped engine: /images/async lists EXPECTED's files for "nurse", a captcha for "blocked"."""

    def route(path, query):
        if path == "/images/async":
            if query["q"] == "blocked":
                return reply(CAPTCHA)
            if query["first"] != "1":
                return reply("")
            anchors = []
            for name, _, _ in EXPECTED.values():
                url = name if "://" in name else f"{running.url}/img/{name}"
                data = json.dumps({"murl": url, "purl": f"http://pages.test/{name}"})
                anchors.append(f'<a class="iusc" m="{html.escape(data)}"></a>')
            return reply("".join(anchors))
        name = path.removeprefix("/img/")
        if name not in files:
            return reply("not found", status=404)
        return reply(files[name], "image/jpeg")

    with serve(route) as running:
        yield running


def _manifest(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_download_keeps_good_images_and_records_every_result(server, files, tmp_path):
    options = DownloadOptions(engine_url=server.url, limit=30)
    outcomes = run_download(["nurse"], tmp_path, options, ExecutionOptions(workers=1))
    assert [(o.term, o.status) for o in outcomes] == [("nurse", "done")]
    assert (
        outcomes[0].detail
        == "4 downloaded, 1 duplicate, 3 rejected, 2 failed; 1 near-duplicate pairs in near_duplicates.csv; "
        "10 of 30 requested: the engine gave no more"
    )
    folder = Layout(tmp_path).downloaded("nurse")
    rows = _manifest(folder / "manifest.csv")
    assert [int(row["rank"]) for row in rows] == list(EXPECTED)
    for row in rows:
        name, status, error = EXPECTED[int(row["rank"])]
        assert (row["status"], row["engine"]) == (status, "bing")
        assert error in row["error"] and "\n" not in row["error"]
        assert Path(row["file"]).name.startswith(f"{int(row['rank']):04d}_") == (status in ("downloaded", "rejected"))
        if row["file"]:
            assert hashlib.sha256((folder / row["file"]).read_bytes()).hexdigest() == row["sha256"]
        datetime.fromisoformat(row["time"])
    kept = sorted(path.name for path in folder.glob("*.jpg"))
    assert kept == sorted(row["file"] for row in rows if row["status"] == "downloaded")
    for name in kept:
        with Image.open(folder / name) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")
    url_hash = hashlib.sha1(f"{server.url}/img/face0.jpg".encode()).hexdigest()[:8]
    assert rows[0]["file"] == f"0001_{url_hash}.jpg"
    with Image.open(folder / rows[2]["file"]) as transparent_png:
        assert min(transparent_png.getpixel((0, 0))) > 245, "transparency becomes white"
    quarantined = {row["file"]: files[EXPECTED[int(row["rank"])][0]] for row in rows if row["status"] == "rejected"}
    assert sorted(Path(name).suffix for name in quarantined) == [".bin", ".jpg", ".png"]
    for name, body in quarantined.items():
        assert name.startswith("_quarantine/") and (folder / name).read_bytes() == body
    assert Layout(tmp_path).known_terms() == ["nurse"]
    with (folder / "near_duplicates.csv").open(newline="") as handle:
        near = [(row["file"][:4], row["near"][:4]) for row in csv.DictReader(handle)]
    assert near == [("0004", "0001")], "the CMYK copy of face0 is a near duplicate of face0"
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        ["_quarantine", "manifest.csv", "near_duplicates.csv", *kept]
    ), "no journal, search list or temporary file is left once the manifest is written"


def test_rerun_skips_and_resume_reuses_kept_files(server, tmp_path):
    run_download(["nurse"], tmp_path, DownloadOptions(engine_url=server.url, limit=30))
    first = _manifest(Layout(tmp_path).manifest("nurse"))
    requests = len(server.log)
    assert [o.status for o in run_download(["nurse"], tmp_path, DownloadOptions(engine_url=server.url))] == ["skipped"]
    assert len(server.log) == requests

    Layout(tmp_path).manifest("nurse").unlink()  # as if the first run had crashed before its marker
    outcome = run_download(["nurse"], tmp_path, DownloadOptions(engine_url=server.url, limit=30))
    again = _manifest(Layout(tmp_path).manifest("nurse"))
    assert outcome[0].status == "done"
    assert [(r["status"], r["file"], r["sha256"]) for r in again] == [
        (r["status"], r["file"], r["sha256"]) for r in first
    ]
    for name in ("face0.jpg", "face1.jpg", "alpha.png", "cmyk.jpg"):
        assert server.paths(f"/img/{name}") == [f"/img/{name}"], "a kept image is not fetched again"


def test_blocked_term_fails_alone(server, tmp_path):
    options = DownloadOptions(engine_url=server.url, limit=10)
    outcomes = run_download(["blocked", "nurse"], tmp_path, options, ExecutionOptions(workers=2))
    assert [(o.term, o.status) for o in outcomes] == [("blocked", "failed"), ("nurse", "done")]
    assert outcomes[0].detail == "bing: blocked by a captcha/consent page for 'blocked'"
    assert not Layout(tmp_path).manifest("blocked").exists()
    assert Layout(tmp_path).known_terms() == ["blocked", "nurse"]


def test_urls_engine_downloads_exactly_the_listed_urls(server, tmp_path):
    table = tmp_path / "urls.csv"
    table.write_text(f"term,url,rank\nnurse,{server.url}/img/face1.jpg,7\nnurse,{server.url}/img/face0.jpg,3\n")
    outcomes = run_download(["nurse"], tmp_path / "out", DownloadOptions(engine="urls", urls=table, limit=5))
    rows = _manifest(Layout(tmp_path / "out").manifest("nurse"))
    assert outcomes[0].detail.startswith("2 downloaded") and "2 of 5 requested" in outcomes[0].detail
    assert [(row["rank"], row["url"].rsplit("/", 1)[1], row["engine"]) for row in rows] == [
        ("3", "face0.jpg", "urls"),
        ("7", "face1.jpg", "urls"),
    ]
    assert server.paths("/images") == []


@pytest.mark.parametrize(
    "options, message",
    [
        ({"engine": "yahoo"}, "unknown engine 'yahoo'"),
        ({"engine": "urls", "urls": Path("absent.csv")}, "urls file absent.csv not found"),
        ({"limit": 0}, "--limit must be at least 1"),
    ],
)
def test_bad_options_raise_before_any_work(tmp_path, options, message):
    with pytest.raises(GimgError, match=message):
        run_download(["nurse"], tmp_path / "out", DownloadOptions(**options))
    assert not (tmp_path / "out").exists()


def _gif() -> bytes:
    frames = [Image.new("P", (40, 40), 0), Image.new("P", (40, 40), 1)]
    for frame in frames:
        frame.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def _rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return _encode(Image.new("RGB", (64, 40), "green"), "JPEG", exif=exif)


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    return _encode(image, "PNG", transparency=0)


@pytest.mark.parametrize(
    "data, size, corner",
    [
        (_encode(Image.new("I;16", (40, 40), 65535), "PNG"), (40, 40), (255, 255, 255)),
        (_encode(Image.new("LA", (40, 40), (0, 0)), "PNG"), (40, 40), (255, 255, 255)),
        (_palette_with_transparency(), (40, 40), (255, 255, 255)),
        (_gif(), (40, 40), (255, 0, 0)),
        (_rotated_jpeg(), (40, 64), None),
        (_encode(Image.new("RGB", (50, 40), "blue"), "WEBP", lossless=True), (50, 40), (0, 0, 255)),
        (_encode(Image.new("RGB", (50, 40), "blue"), "BMP"), (50, 40), (0, 0, 255)),
        (_encode(Image.new("CMYK", (50, 40), (0, 0, 0, 0)), "TIFF"), (50, 40), (255, 255, 255)),
    ],
)
def test_validate_image_converts_to_upright_rgb(data, size, corner):
    image = validate_image(data)
    assert not isinstance(image, str), image
    assert (image.mode, image.size) == ("RGB", size)
    if corner:
        assert image.getpixel((0, 0)) == corner


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "not an image: empty body"),
        (b"GIF89a" + b"\x00" * 20, "undecodable gif"),
        (b"\x00\x01garbage", "not an image: unknown format"),
        (b'<?xml version="1.0"?><svg/>', "svg: not a raster image"),
        (b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg'/>", "svg: not a raster image"),
        (b"<?xml version='1.0'?><rss/>", "not an image: the server sent HTML/XML"),
    ],
)
def test_validate_image_gives_reasons(data, reason):
    assert validate_image(data).startswith(reason)


def test_validate_image_refuses_decompression_bombs():
    image = _encode(Image.new("RGB", (40, 40)), "PNG")
    assert validate_image(image, max_pixels=1000) == "decompression bomb: 40x40 is over 1000 pixels"
