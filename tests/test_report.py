"""The analysis report: one self-contained HTML file with the scatter plot and each term's strip of faces."""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from test_analyze import TREE, analyse


def write_crops(out: Path, fixtures: Path) -> None:
    """Give every face of the synthetic tree a real crop (a labelled face of the fixtures) under Cropped_faces/."""
    from gimg.layout import Layout

    layout = Layout(out)
    sources = sorted((fixtures / "faces" / "images").glob("*.jpg"))
    index = 0
    for term, images in TREE.items():
        layout.cropped(term).mkdir(parents=True, exist_ok=True)
        for rank, (status, boxes) in enumerate(images, start=1):
            for face in range(len(boxes)):
                shutil.copy(sources[index % len(sources)], layout.cropped(term) / f"{rank:04d}_{rank:08x}_{face}.jpg")
                index += 1


@pytest.fixture
def html(tmp_path, fixtures) -> str:
    analyse(tmp_path)  # writes the tree; analysed again below, once its crops exist
    write_crops(tmp_path / "out", fixtures)
    return analyse(tmp_path, policy="all").report_html.read_text(encoding="utf-8")


def _strip(html: str, term: str) -> str:
    match = re.search(rf'<div class="strip"><h3>{re.escape(term)} .*?</div>', html, re.S)
    assert match, term
    return match.group(0)


def test_report_is_self_contained(html):
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html and "@import" not in html
    sources = re.findall(r'src="([^"]+)"', html)
    assert sources and all(source.startswith("data:image/") for source in sources)


def test_every_embedded_image_decodes(html):
    for kind, data in re.findall(r'src="data:image/(png|jpeg);base64,([^"]+)"', html):
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.format == kind.upper()


@pytest.mark.parametrize(
    ("term", "p_female"),
    [
        ("nurse", [0.1, 0.2, 0.5, 0.9, 0.95]),  # every face under the "all" policy, ordered by p_female
        ("software developer", [0.1, 0.1, 0.3, 0.8]),
        ("astronaut", [0.9]),
    ],
)
def test_strips_show_the_counted_faces_in_order(html, term, p_female):
    strip = _strip(html, term)
    shown = [float(value) for value in re.findall(r'title="p_female ([0-9.]+)"', strip)]
    assert shown == p_female
    assert strip.count("data:image/jpeg;base64,") == len(p_female)
    assert strip.count('class="woman"') == sum(p >= 0.5 for p in p_female)


def test_a_term_without_faces_says_so(html):
    assert "no face crops to show" in _strip(html, "ghost writer")


def test_strips_are_capped_and_spread(tmp_path, fixtures):
    crowded = {"crowd": [("downloaded", [(50, p / 100) for p in range(80)])]}
    result = analyse(tmp_path, crowded, policy="all")
    strip = result.strips["crowd"]
    assert len(strip) == 30
    assert strip[0][1] == 0.0 and strip[-1][1] == 0.79
    assert [p for _, p in strip] == sorted(p for _, p in strip)


@pytest.mark.skipif(not Path("/usr/bin/chromedriver").exists(), reason="needs Debian chromium and chromium-driver")
def test_report_renders_its_plot_in_headless_chromium(tmp_path, fixtures):
    """Open report.html in the real browser, screenshot the scatter plot, and check that it shows a plot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from gimg.engines.google import BROWSER_ARGUMENTS

    analyse(tmp_path)
    write_crops(tmp_path / "out", fixtures)
    report = analyse(tmp_path, policy="all").report_html
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in (*BROWSER_ARGUMENTS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        driver.get(report.resolve().as_uri())
        plot = driver.find_element(By.CSS_SELECTOR, 'img[alt^="Scatter plot"]')
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot) > 300
        shot = Image.open(io.BytesIO(plot.screenshot_as_png)).convert("RGB")
        driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert shot.width > 300 and shot.height > 200
    colours = shot.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the plot area is blank"
    dark = sum(count for count, rgb in (colours or []) if sum(rgb) < 200)
    assert colours is None or dark > 500, "no axes, labels or points drawn"
