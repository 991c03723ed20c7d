"""The shifted-set experiment: correct with the study's own labelled rates, or with the shipped UTKFace rates?

Usage: python bench/shifted.py --out /tmp/shifted [--per-term 190] [--n 400] [--seed 0 1 2]

For each seed, tests/shiftedset.py builds the study through the real CLI (`gimg pipeline` against the local engine
on 127.0.0.1, then `gimg label sample`, `gimg label import` with labels from the truth, `gimg analyze`): older
UTKFace faces made grey, blurred and darker, five terms with 5 to 95% women. Prints, per seed, the table of shares
corrected with the shipped rates and with the study's rates, and writes OUT/seed-<seed>/shifted.csv. The
faces are degraded once, under OUT/faces.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a folder for the faces and one study per seed")
    parser.add_argument("--per-term", type=int, default=190, help="images per term (default 190)")
    parser.add_argument("--n", type=int, default=400, help="faces in the labelled sample (default 400)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="seeds of the site, sample and bootstrap")
    args = parser.parse_args()
    if not SHARED_DATA.is_dir():
        print(f"needs ../shared/data next to the repository ({SHARED_DATA} is absent)", file=sys.stderr)
        return 2

    from shiftedset import describe, run_shifted

    for seed in args.seed:
        root = args.out / f"seed-{seed}"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        (args.out / "faces").mkdir(parents=True, exist_ok=True)
        (root / "faces").symlink_to((args.out / "faces").resolve(), target_is_directory=True)
        table = run_shifted(SHARED_DATA, root, args.per_term, args.n, seed)
        table.to_csv(root / "shifted.csv", index=False)
        print(f"seed {seed}: {args.per_term} images per term, {args.n} faces labelled from the truth")
        print(describe(table, root), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
