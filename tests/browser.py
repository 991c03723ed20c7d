"""Headless Debian Chromium for tests that open gimg's reports: the driver, and a check that a figure drew."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextmanager
def headless_chromium(profile: Path) -> Iterator:
    """A Selenium driver of headless Chromium with its profile in profile (offline: the driver path is given)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    from gimg.engines.google import BROWSER_ARGUMENTS

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (*BROWSER_ARGUMENTS, f"--user-data-dir={profile}", "--window-size=1200,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def figure_drew(driver, image) -> Image.Image:
    """Screenshot one <img> of the open page; fail unless it loaded and shows a drawing (not a blank area)."""
    assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 300
    driver.execute_script("arguments[0].scrollIntoView()", image)
    shot = Image.open(io.BytesIO(image.screenshot_as_png)).convert("RGB")
    assert shot.width > 300 and shot.height > 150
    colours = shot.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the figure is blank"
    dark = sum(count for count, rgb in (colours or []) if sum(rgb) < 200)
    assert colours is None or dark > 300, "no axes, labels or points drawn"
    return shot
