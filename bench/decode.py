"""Does detecting on a reduced JPEG decode pay? Decode costs, and YuNet's recall on reduced decodes.

Usage: python bench/decode.py [--count 600] [--set DIR] [--repeats 5]

On the evaluation split of the bench images (bench/images.py), per image:
- CPU ms (one thread, best of --repeats) of OpenCV's full decode and of its DCT-scaled decodes at 1/2 and 1/4
  (cv2.IMREAD_REDUCED_COLOR_2/4, what PIL's draft mode also does), and of the resize to YuNet's fine pass;
- YuNet's recall of the pasted faces when it runs on the full decode and on the 1/2 decode (its min_face scaled);
- the cost per image of each design: full decode + resize, or reduced decode + resize + a full decode of the
  images where a face was found (their crops must come from full-resolution pixels).
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

from images import EVALUATION, SHARED_DATA, build_bench_images, require_shared_data  # noqa: E402
from tune import score_boxes  # noqa: E402

from gimg import yunet  # noqa: E402

FLAGS = {"full": cv2.IMREAD_COLOR, "1/2": cv2.IMREAD_REDUCED_COLOR_2, "1/4": cv2.IMREAD_REDUCED_COLOR_4}
FACTORS = {"full": 1, "1/2": 2, "1/4": 4}


def best_of(function, repeats: int) -> float:
    """The smallest CPU time of repeats calls, in ms: the least disturbed by other jobs on the machine."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return 1000 * min(times)


def main() -> None:
    """Print decode costs, recall on reduced decodes, and the cost of each design."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600, help="bench images of both splits")
    parser.add_argument("--set", type=Path, default=None, help="a folder bench/images.py wrote (default: build one)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per image; the best is kept")
    options = parser.parse_args()
    require_shared_data(SHARED_DATA)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="gimg-decode-") as temporary:
        folder = options.set or Path(temporary)
        if options.set is None:
            build_bench_images(SHARED_DATA, folder, options.count)
        listed = pd.read_csv(folder / "images.csv")
        names = list(listed.file[listed.split == EVALUATION])
        truth = pd.read_csv(folder / "truth.csv")
        truth = truth[truth.file.isin(names)]
        costs = {key: 0.0 for key in (*FLAGS, "resize from full", "resize from 1/2")}
        found: dict[str, dict[str, list]] = {"full": {}, "1/2": {}}
        for name in names:
            data = np.fromfile(folder / "images" / name, np.uint8)
            for key, flag in FLAGS.items():
                costs[key] += best_of(lambda: cv2.imdecode(data, flag), options.repeats)
            for key in found:
                bgr = cv2.imdecode(data, FLAGS[key])
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                scale = yunet.pass_scales(rgb.shape[1], rgb.shape[0], yunet.DEFAULT_MIN_FACE / FACTORS[key])[0]
                size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
                costs[f"resize from {key}"] += best_of(lambda: yunet._resized(rgb, size), options.repeats)
                faces = yunet.detect_faces_yunet(rgb, min_face=yunet.DEFAULT_MIN_FACE / FACTORS[key])
                found[key][name] = [tuple(FACTORS[key] * value for value in (f.left, f.top, f.right, f.bottom))
                                    for f in faces]
    count = len(names)
    print(f"evaluation split: {count} images, {len(truth)} pasted faces")
    print("| step | CPU ms per image (mean of the best of each image) |")
    print("|---|---|")
    for key, total in costs.items():
        print(f"| {key} decode |" if key in FLAGS else f"| {key} (YuNet's fine pass, INTER_LINEAR) |",
              f"{total / count:.2f} |")
    with_face = {key: sum(bool(boxes) for boxes in found[key].values()) / count for key in found}
    for key in found:
        matched, total, _, _ = score_boxes(found[key], truth, set())
        print(f"YuNet on the {key} decode: pasted recall {matched}/{total} ({matched / total:.1%}), "
              f"{with_face[key]:.0%} of the images with a face")
    mean = {key: total / count for key, total in costs.items()}
    full_design = mean["full"] + mean["resize from full"]
    reduced_design = mean["1/2"] + mean["resize from 1/2"] + with_face["1/2"] * mean["full"]
    print(f"design A, full decode then resize: {full_design:.2f} ms per image")
    print(f"design B, 1/2 decode then resize, full decode where a face was found ({with_face['1/2']:.0%}): "
          f"{reduced_design:.2f} ms per image")
    share = (mean["resize from full"] - mean["resize from 1/2"] - mean["1/2"]) / mean["full"] + 1
    print(f"design B pays only where fewer than {max(share, 0):.0%} of the images hold a face")


if __name__ == "__main__":
    main()
