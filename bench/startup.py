"""Time `import gimg.cli` and `gimg --help` for this checkout against another revision's source, interleaved.

Usage: python bench/startup.py [--base a11d124] [--runs 30]

The base revision's src/ is exported with `git archive` into a temporary folder and put first on PYTHONPATH, so
both trees run in this interpreter with the same installed dependencies. Prints medians and minimums in ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import gimg.cli": "import gimg.cli",
    "gimg --help": "import sys; sys.argv = ['gimg', '--help']; from gimg.cli import main; main()",
}


def seconds(source: Path, code: str) -> float:
    """Wall time of a fresh interpreter that runs code with source first on its path."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=environment, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    """Export the base's source, time both trees in turn, and print every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="a11d124", help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=30, help="runs of each command on each tree")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gimg-startup-") as folder:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", options.base, "src"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        trees = {options.base: Path(folder) / "src", "this checkout": REPO / "src"}
        times: dict[tuple[str, str], list[float]] = {(tree, name): [] for tree in trees for name in COMMANDS}
        for _ in range(options.runs):
            for tree, source in trees.items():
                for name, code in COMMANDS.items():
                    times[tree, name].append(seconds(source, code))
    print(f"python bench/startup.py --base {options.base} --runs {options.runs}; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    for (tree, name), values in sorted(times.items(), key=lambda item: item[0][1]):
        print(f"{name:16s} {tree:14s} median {1000 * statistics.median(values):.0f} ms, "
              f"min {1000 * min(values):.0f} ms")


if __name__ == "__main__":
    main()
