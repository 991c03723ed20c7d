"""What the rank statistics and Kay et al.'s model cost in `gimg analyze`, on a synthetic classified tree.

    python bench/analysis.py --terms 100 --images 500

Writes a tree of TERMS terms x IMAGES images (one face each, p_female uniform) in a temporary folder, then times,
medians of 3 in one run: the whole analysis with its tables, figures and report (run_analyze), the analysis
without ranks (the per-term bootstrap, `summarize`, the baseline), and the ranks and the model alone
(`rank_codes` + `classified_literature`: rank bands, rank test with 9,999 permutations, the model's bootstrap).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_analyze import write_census, write_test_evaluation, write_tree  # noqa: E402

from gimg.analyze import _read_dataset, analyze, compared, rank_codes, read_census, summarize  # noqa: E402
from gimg.layout import Layout  # noqa: E402
from gimg.literature import classified_literature  # noqa: E402
from gimg.options import AnalyzeOptions  # noqa: E402
from gimg.pipeline import run_analyze  # noqa: E402


def median_seconds(work, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terms", type=int, default=100)
    parser.add_argument("--images", type=int, default=500)
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    tree = {f"term {index}": [("downloaded", [(60, float(rng.random()))]) for _ in range(arguments.images)]
            for index in range(arguments.terms)}
    root = Path(tempfile.mkdtemp(prefix="gimg-bench-analysis-"))
    write_tree(root / "out", tree)
    census = write_census(root / "census.csv", {term: float(rng.random()) for term in tree})
    options = AnalyzeOptions(census=census, evaluation=write_test_evaluation(root / "evaluation.json"), min_faces=1)
    layout = Layout(root / "out")
    datasets = {term: _read_dataset(layout, term) for term in tree}
    result = analyze(root / "out", options)
    inside = compared(result.summary).to_numpy()
    census_table = read_census(census)

    def baseline() -> None:
        summarize(layout, datasets, census_table, options, result.evaluation, np.random.default_rng(0))

    def literature() -> None:
        replicates = np.full((int(inside.sum()), options.resamples), 0.5)
        classified_literature(rank_codes(layout, datasets, options), result.summary[inside], replicates,
                              result.evaluation, options, np.random.default_rng(0))

    whole, base, ranks = (median_seconds(work) for work in
                          (lambda: run_analyze(root / "out", options), baseline, literature))
    print(f"{arguments.terms} terms x {arguments.images} images, {options.resamples} resamples (medians of 3):")
    print(f"  run_analyze (tables, figures, report): {whole:.2f} s")
    print(f"  per-term bootstrap (baseline):         {base:.2f} s")
    print(f"  ranks + Kay's model:                   {ranks:.2f} s = {ranks / base:.1f}x the baseline")


if __name__ == "__main__":
    main()
