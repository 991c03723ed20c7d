"""How many labels a study needs: the width of the study rates' 95% intervals against the number of labelled faces.

Usage: python bench/labels_needed.py [--studies 100] [--resamples 1000]   (about a minute; seed 20261124)

Simulated studies like those of tests/test_studyrates.py (five terms of 600 counted faces with 5, 10, 20, 30 and 90%
women, 8% non-person faces, 5% of people unclear to raters), for three classifiers (sensitivity / specificity
0.95 / 0.95, 0.90 / 0.90 and 0.80 / 0.90). Each study's sample is drawn with gimg's design and labelled from the
truth; the table gives the median half-width of the 95% intervals of sensitivity and specificity over the studies,
and the median number of extra labels `labels_to_halve` asks for to halve the sensitivity's interval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_studyrates as simulation  # noqa: E402

from gimg.studyrates import draw_study_rates, labels_to_halve  # noqa: E402

CLASSIFIERS = ((0.95, 0.95), (0.90, 0.90), (0.80, 0.90))
SAMPLES = (100, 200, 300, 600, 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=100, help="simulated studies per row (default 100)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap replicates per study (default 1000)")
    args = parser.parse_args()
    rng = np.random.default_rng(20261124)
    print(f"{args.studies} simulated studies of {len(simulation.THETAS)} terms x {simulation.TERM_FACES} counted faces "
          f"per row; median 95% interval half-width; labels to halve the sensitivity's interval")
    print(f"{'Se / Sp':>11} {'labels':>7} {'Se +-':>7} {'Sp +-':>7} {'more labels to halve Se':>24}")
    for sensitivity, specificity in CLASSIFIERS:
        simulation.SENSITIVITY, simulation.SPECIFICITY = sensitivity, specificity  # simulate() reads these
        for labels in SAMPLES:
            widths, more = {"sensitivity": [], "specificity": []}, []
            for _ in range(args.studies):
                cells, _ = simulation.sample_cells(simulation.simulate(rng), rng, n=labels)
                draws = draw_study_rates(cells, args.resamples, rng)
                for rate, found in widths.items():
                    low, high = np.nanpercentile(getattr(draws, rate), [2.5, 97.5])
                    found.append((high - low) / 2)
                more.append(labels_to_halve(cells, args.resamples // 2, rng)["sensitivity"]["more_labels"])
            print(f"{sensitivity:.2f} / {specificity:.2f} {labels:7d} {np.median(widths['sensitivity']):7.3f} "
                  f"{np.median(widths['specificity']):7.3f} {int(np.median(more)):24d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
