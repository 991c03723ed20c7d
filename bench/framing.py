"""How the default gender net is fed, measured again: chip supersampling and flip averaging, on the same faces.

Usage: python bench/framing.py [--out bench_framing] [--runs 3]

- Faces: ../shared/data/faces/utkface (2,000) and facelab (142) through `gimg evaluate`'s own staging and crop
  stage, once (gimg.compare.evaluate_models); every variant classifies the same biggest face of each image,
  so detections are unchanged and only the chip differs. Then the 12 scene photos of ../shared/data/scenes,
  every face found: they have no gender labels, so the bench counts the faces whose predicted class a
  variant changes against today's path. Each variant's evaluation.json (as `gimg evaluate` writes it) is saved
  in OUT/<dataset>/evaluation-<variant>.json, ready to ship as the default model's evaluation.
- Variants: today's OnnxGender (dlib chip at 32 px), the same chip rendered at 2x or 4x its side and shrunk with
  pixel-area averaging (ChipSpec.supersample), and each with the mirrored chip averaged in (flip_average).
- ms per face: CPU time of this one-threaded process (what a face costs, hardly changed by other load), in
  chunks of 64 as classify runs them, the variants taking turns on each chunk (gimg.compare.time_backends),
  median of --runs passes, and the ratio to today's path in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"


def backends() -> dict:
    """Today's path and the framing variants, by display name."""
    from gimg.classify import OnnxGender
    from gimg.facechips import ChipSpec
    from gimg.trained import default_net

    return {
        "today (chip 32)": OnnxGender(),
        "flip": default_net(ChipSpec(flip_average=True)),
        "supersample 2": default_net(ChipSpec(supersample=2)),
        "supersample 4": default_net(ChipSpec(supersample=4)),
        "supersample 4 + flip": default_net(ChipSpec(supersample=4, flip_average=True)),
    }


def scene_changes(out: Path, models: dict, runs: int) -> pd.DataFrame:
    """Every face of the scene photos: each variant's class changes and mean |p change| against today's path."""
    from gimg.compare import time_backends
    from gimg.evaluate import EVALUATION_TERM, stage_images
    from gimg.faces import box_in_crop, decode_crop, run_crop
    from gimg.layout import Layout

    photos = sorted(path.name for path in (SHARED / "scenes" / "photos").glob("*.jpg"))
    stage_images(pd.DataFrame({"file": photos}), SHARED / "scenes" / "photos", out)
    run_crop(out, workers=1)
    layout = Layout(out)
    faces = pd.read_csv(layout.faces(EVALUATION_TERM))
    folder = layout.cropped(EVALUATION_TERM)
    crops = [(decode_crop((folder / row["file"]).read_bytes()), box_in_crop(row)) for row in faces.to_dict("records")]
    p_female, timings = time_backends(models, crops, runs=runs)
    today = p_female["today (chip 32)"]
    rows = [{"variant": name, "faces": len(crops), "class_changes": int(((p >= 0.5) != (today >= 0.5)).sum()),
             "mean_abs_change": float(abs(p - today).mean()), "ms_per_face": timings[name]}
            for name, p in p_female.items()]
    return pd.DataFrame(rows)


def write_evaluation(scored: pd.DataFrame, labels: Path, variant: str, target: Path) -> None:
    """The evaluation.json `gimg evaluate` would write for these predictions (its own summarize)."""
    from gimg.evaluate import _without_nan, summarize

    metrics = summarize(scored, cutoff=0.5, model="onnx:gender-v1", dataset=str(labels.resolve()))
    metrics["provenance"] += f" Chip framing: {variant} (bench/framing.py)."
    target.write_text(json.dumps(_without_nan(metrics), indent=2, allow_nan=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_framing"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not (SHARED / "faces" / "utkface" / "labels.csv").is_file():
        sys.exit(f"bench/framing.py needs {SHARED} (the shared data next to the repo)")
    from gimg.compare import evaluate_models

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    models = backends()
    columns = ["model", "faces", "no_face", "accuracy", "sensitivity", "specificity", "ece", "ms_per_face",
               "race_gap", "race_worst"]
    for dataset in ("utkface", "facelab"):
        labels = SHARED / "faces" / dataset / "labels.csv"
        result = evaluate_models(labels, models, out=args.out / dataset, timing_runs=args.runs)
        for name, scored in result.predictions.items():
            write_evaluation(scored, labels, name, args.out / dataset / f"evaluation-{name.replace(' ', '_')}.json")
        summary = result.comparison.summary
        summary["time_vs_today"] = summary.ms_per_face / summary.ms_per_face.iloc[0]
        print(f"\n== {dataset}\n{summary[columns + ['time_vs_today']].round(4).to_string(index=False)}", flush=True)
    scenes = scene_changes(args.out / "scenes", models, args.runs)
    scenes["time_vs_today"] = scenes.ms_per_face / scenes.ms_per_face.iloc[0]
    print(f"\n== scene photos (no labels: changes against today's path)\n{scenes.round(4).to_string(index=False)}",
          flush=True)


if __name__ == "__main__":
    main()
