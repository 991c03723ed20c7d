"""The labelling page in headless Chromium: two raters label with the keyboard; the server is killed halfway."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from labelstudy import copy_study

from gimg.options import SampleOptions
from gimg.validation import draw_sample, read_rater_labels

CHROMEDRIVER = Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(not CHROMEDRIVER.exists(), reason="needs Debian chromium and chromium-driver")
ITEMS = 12


def start_server(out: Path) -> tuple[subprocess.Popen, str]:
    """`gimg label serve` in its own process; returns the process and the address it says to open."""
    process = subprocess.Popen([sys.executable, "-m", "gimg", "label", "serve", "--out", str(out)],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    url = re.search(r"open (http://127\.0\.0\.1:\d+/) in a browser", line)
    assert url, line
    return process, url.group(1)


def browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                     "--window-size=1200,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def wait_for(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def open_page(driver, url: str, rater: str) -> None:
    driver.get(f"{url}?rater={rater}")
    wait_for(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1", "page ready")


def shown(driver) -> str:
    return driver.find_element("id", "work").get_attribute("data-item")


def done(driver) -> int:
    return int(driver.find_element("tag name", "body").get_attribute("data-done"))


def press(driver, key: str, expect_done: int) -> str:
    """Press a key on the page and wait until the server has saved it; return the item that was on screen."""
    from selenium.webdriver.common.action_chains import ActionChains

    item = shown(driver)
    ActionChains(driver).send_keys(key).perform()
    wait_for(driver, lambda d: done(d) == expect_done and shown(d) != item, f"{key!r} saved ({expect_done} done)")
    return item


def test_two_raters_label_with_the_keyboard_and_a_killed_server_loses_nothing(label_study, tmp_path):
    out = copy_study(label_study, tmp_path / "out")
    items = draw_sample(out, SampleOptions(n=ITEMS))["item"].tolist()
    server, url = start_server(out)
    ana = browser(tmp_path / "ana-profile")
    ben = None
    try:
        open_page(ana, url, "ana")
        assert shown(ana) == items[0]
        assert "0 / 12 labelled" in ana.find_element("id", "progress").text
        typed = {press(ana, "f", 1): "female"}
        second = press(ana, "m", 2)
        assert press(ana, "z", 1) != second and shown(ana) == second  # undo brings the item back, unlabelled
        typed[press(ana, "2", 2)] = "male"
        typed[press(ana, "u", 3)] = "unclear"
        typed[press(ana, "p", 4)] = "not_a_person"
        assert list(typed) == items[:4]

        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        saved = read_rater_labels(out, "ana")
        assert dict(zip(saved["item"], saved["label"])) == typed

        server, url = start_server(out)
        open_page(ana, url, "ana")
        assert "4 / 12 labelled" in ana.find_element("id", "progress").text
        assert shown(ana) == items[4]  # resumes at the next unlabelled face
        for count, key in enumerate("nfmfmfmf", start=5):
            typed[press(ana, key, count)] = {"n": "not_a_face", "f": "female", "m": "male"}[key]
        assert ana.find_element("id", "done").is_displayed()
        ana.save_screenshot(str(tmp_path / "done.png"))

        ben = browser(tmp_path / "ben-profile")
        open_page(ben, url, "ben")
        assert shown(ben) == items[0] and "0 / 12 labelled" in ben.find_element("id", "progress").text
        ben.save_screenshot(str(tmp_path / "ben.png"))
        ben_typed = {press(ben, "m" if index % 3 else "f", index + 1): "male" if index % 3 else "female"
                     for index in range(ITEMS)}
    finally:
        ana.quit()
        if ben is not None:
            ben.quit()
        server.kill()
        server.wait(timeout=10)
    ana_saved, ben_saved = read_rater_labels(out, "ana"), read_rater_labels(out, "ben")
    assert dict(zip(ana_saved["item"], ana_saved["label"])) == typed and len(typed) == ITEMS
    assert dict(zip(ben_saved["item"], ben_saved["label"])) == ben_typed and set(ben_typed) == set(items)
    assert set(ana_saved["rater"]) == {"ana"} and set(ben_saved["rater"]) == {"ben"}


def test_the_page_asks_for_a_name_and_refuses_an_unsafe_one(label_study, tmp_path):
    from gimg.labelserver import make_label_server
    from gimg.localengine import serving

    out = copy_study(label_study, tmp_path / "out")
    draw_sample(out, SampleOptions(n=3))
    driver = browser(tmp_path / "profile")
    try:
        with serving(make_label_server(out)) as url:
            driver.get(url + "/")
            wait_for(driver, lambda d: d.find_element("id", "who").is_displayed(), "the name form")
            driver.find_element("id", "rater-name").send_keys("../eve\n")
            wait_for(driver, lambda d: "not a safe file name" in d.find_element("id", "status").text, "refusal")
            driver.get(url + "/")
            wait_for(driver, lambda d: d.find_element("id", "who").is_displayed(), "the name form again")
            driver.find_element("id", "rater-name").send_keys("eve\n")
            wait_for(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1", "ready")
            press(driver, "f", 1)
    finally:
        driver.quit()
    assert read_rater_labels(out, "eve")["label"].tolist() == ["female"]
    assert [path.name for path in (out / "validation" / "labels").glob("*.csv")] == ["eve.csv"]
