"""How fast the labelling page takes answers: headless Chromium labels every sampled face with the keyboard.

Usage: python bench/labelspeed.py --out /tmp/labelspeed [--rounds 3]   (needs Debian chromium and chromedriver)

Builds the small study of tests/labelstudy.py (fixture faces through the real download, crop and classify), draws a
sample of all its counted faces, starts `gimg label serve` in its own process, and has the browser answer every face
with a key, waiting each time until the server has saved the answer and the page shows the next face. Prints the
seconds per answer of each round and their median: the tool's own share of a person's labelling time (a person
needs the time to look on top of it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import labelstudy  # noqa: E402
import test_labelpage as page  # noqa: E402

from gimg.options import SampleOptions  # noqa: E402
from gimg.validation import draw_sample  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a folder for the study and the browser profiles")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each a new rater labelling every face")
    args = parser.parse_args()
    study = labelstudy.build_study(args.out / "labelstudy", FIXTURES)
    out = args.out / "study"
    shutil.rmtree(out, ignore_errors=True)
    labelstudy.copy_study(study, out)
    faces = len(draw_sample(out, SampleOptions(n=10_000)))
    server, url = page.start_server(out)
    seconds = []
    try:
        for round_ in range(args.rounds):
            driver = page.browser(args.out / f"profile-{round_}")
            try:
                page.open_page(driver, url, f"rater{round_}")
                started = time.perf_counter()
                for count in range(1, faces + 1):
                    page.press(driver, "fm"[count % 2], count)
                seconds.append((time.perf_counter() - started) / faces)
            finally:
                driver.quit()
            print(f"round {round_ + 1}: {faces} answers, {seconds[-1]:.3f} s per answer", flush=True)
    finally:
        server.kill()
        server.wait(timeout=10)
    print(f"median of {args.rounds} rounds: {statistics.median(seconds):.3f} s per answer (page, server and atomic "
          f"save; {faces} faces per round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
