"""Build the demo's shipped faces (src/gimg/data/demo_faces/) from the Face Research Lab portraits (CC BY 4.0).

Run from the repository root:  python scripts/build_demo_faces.py [--facelab DIR] [--per-gender N]
Each portrait is centre-cropped to a square, resized to 200 x 200 and saved as JPEG quality 85.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "gimg" / "data" / "demo_faces"
SIZE = 200
QUALITY = 85
SOURCE = """# Demo faces

{count} portraits ({women} women, {men} men) from the Face Research Lab London Set and the Young Adult White Faces
set, chosen at random (seed {seed}, {per_gender} per self-reported gender) from ../shared/data/faces/facelab/ by
`scripts/build_demo_faces.py`: centre-cropped to a square, resized to {size} x {size}, JPEG quality {quality}.
`labels.csv` keeps the people's self-reported gender, age and ethnicity (`race`).

Face images: Face Research Lab London Set (DeBruine & Jones, 2017, doi:10.6084/m9.figshare.5047666.v5) and
Young Adult White Faces with Manipulated Versions (DeBruine & Jones, 2017, doi:10.6084/m9.figshare.4220517.v1),
CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), via github.com/debruine/webmorphR.stim; cropped and
downscaled as above. The people consented to their images being used in web-based studies and to illustrate
research.
"""


def build(facelab: Path, per_gender: int, seed: int = 0) -> pd.DataFrame:
    """Write the demo faces, their labels.csv and SOURCE.md; return the labels."""
    labels = pd.read_csv(facelab / "labels.csv")
    chosen = labels.groupby("gender", group_keys=False).sample(per_gender, random_state=seed).sort_values("file")
    shutil.rmtree(TARGET, ignore_errors=True)
    (TARGET / "images").mkdir(parents=True)
    for name in chosen.file:
        with Image.open(facelab / "images" / name) as portrait:
            square = ImageOps.fit(portrait.convert("RGB"), (SIZE, SIZE))
            square.save(TARGET / "images" / name, quality=QUALITY)
    chosen = chosen.assign(age=chosen.age.astype("Int64"))  # a few ages are missing: keep the others whole
    chosen[["file", "gender", "race", "age"]].to_csv(TARGET / "labels.csv", index=False)
    counts = chosen.gender.value_counts()
    (TARGET / "SOURCE.md").write_text(SOURCE.format(
        count=len(chosen), women=counts["female"], men=counts["male"], seed=seed, per_gender=per_gender,
        size=SIZE, quality=QUALITY), encoding="utf-8")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facelab", type=Path, default=REPO.parent / "shared" / "data" / "faces" / "facelab",
                        help="folder with labels.csv and images/ of the Face Research Lab portraits")
    parser.add_argument("--per-gender", type=int, default=30, help="portraits per gender")
    arguments = parser.parse_args()
    if not (arguments.facelab / "labels.csv").is_file():
        sys.exit(f"build_demo_faces: no labels.csv in {arguments.facelab}: pass --facelab")
    chosen = build(arguments.facelab, arguments.per_gender)
    print(f"wrote {len(chosen)} faces to {TARGET}")


if __name__ == "__main__":
    main()
