"""Time the original's face method against gimg's crop + classify on the same images, with recall and memory.

Usage: python bench/faces.py [--count 300] [--runs 3] [--baseline-count 100] [--sizes 100,1000,10000]
                             [--workers N] [--min-face PX]

- baseline: the original's method in one process: full decode (Pillow, as face_recognition.load_image_file),
  dlib HOG at upsample 1, 68-point landmarks written beside each crop (50/30 px margins, cv2.imwrite), then each
  crop read back and the Levi-Hassner net in OpenCV DNN at batch 1 on 227x227 (random weights from
  tests/caffe_fixture.py when cnn_age_gender/gender_net.caffemodel is absent: the timing is the same).
- gimg: run_crop + run_classify with their defaults and default workers, and the fused run_crop_classify
  that `gimg pipeline` runs (--min-face fixes BlazeFace's smallest face instead of the automatic one).
Rates are medians over runs; recall and precision at IoU >= 0.5 on the labelled scene photos and on the bench
truth; peak RSS of the process tree (psutil, sampled) for 100 / 1,000 / 10,000 images reused by hardlinks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

# gimg's spawned pool workers re-import this script as __mp_main__. Users' workers never load the bench's own
# modules (the `gimg` command imports only click), so neither may the bench's: that would time the bench, not gimg.
if __name__ != "__mp_main__":
    import cv2
    import dlib
    import numpy as np
    import pandas as pd
    import psutil
    from caffe_fixture import write_caffemodel
    from images import SHARED_DATA, build_bench_images, has_scene_background, require_shared_data
    from PIL import Image

from gimg import models  # noqa: E402
from gimg.classify import run_classify  # noqa: E402
from gimg.crops import Box, crop_box  # noqa: E402
from gimg.faces import run_crop  # noqa: E402
from gimg.layout import Layout, write_csv  # noqa: E402
from gimg.options import CropOptions, ExecutionOptions  # noqa: E402
from gimg.pipeline import run_crop_classify  # noqa: E402

MANIFEST_COLUMNS = ["rank", "url", "source_page", "engine", "time", "sha256", "status", "error", "file"]
IMAGES_PER_TERM = 500  # the original's study size per occupation
Boxes = dict[str, list[tuple[int, int, int, int]]]


# The baseline: the original's CropFaces.py and classifier, one process.

@dataclass
class Baseline:
    """The original's models: dlib HOG, the 68-point predictor, and Levi-Hassner in OpenCV DNN."""

    detector: object
    predictor: object
    net: object

    @classmethod
    def load(cls, work: Path) -> Baseline:
        folder = models.caffe_dir()
        weights = folder / models.CAFFE_WEIGHTS
        if not weights.is_file():
            weights = write_caffemodel(work / "random_gender_net.caffemodel")
        net = cv2.dnn.readNetFromCaffe(str(HERE.parent / models.CAFFE_FOLDER / models.CAFFE_DEPLOY), str(weights))
        predictor = dlib.shape_predictor(str(models.landmarks_68_predictor()))
        return cls(dlib.get_frontal_face_detector(), predictor, net)

    def run(self, paths: list[Path], crop_dir: Path) -> Boxes:
        """Crop then classify every image as the original did; the detected boxes per image."""
        found: Boxes = {}
        crops = []
        for path in paths:
            image = np.array(Image.open(path).convert("RGB"))
            height, width = image.shape[:2]
            boxes = []
            for index, rect in enumerate(self.detector(image, 1)):
                left, top = max(rect.left(), 0), max(rect.top(), 0)
                right, bottom = min(rect.right(), width), min(rect.bottom(), height)
                boxes.append((left, top, right, bottom))
                shape = self.predictor(image, dlib.rectangle(left, top, right, bottom))
                region = crop_box(Box(left, top, right, bottom), image.shape)
                name = crop_dir / f"{path.stem}_{index}"
                cv2.imwrite(f"{name}.jpg", image[region.top : region.bottom, region.left : region.right, ::-1])
                name.with_suffix(".txt").write_text(
                    "".join(f"{p.x - region.left} {p.y - region.top}\n" for p in shape.parts())
                )
                crops.append(f"{name}.jpg")
            found[path.name] = boxes
        for crop in crops:  # the original's second script: read each crop, one forward pass per face
            bgr = cv2.resize(cv2.imread(crop), (256, 256)).astype(np.float32)[14:241, 14:241]
            self.net.setInput(cv2.dnn.blobFromImage(bgr, 1.0, (227, 227), (78.43, 87.77, 114.90)))
            self.net.forward()
        return found


# The gimg path: an output tree as the download stage leaves it, then the stages.

def make_tree(out: Path, paths: list[Path], count: int) -> None:
    """count images (paths reused cyclically, as hardlinks) in terms of IMAGES_PER_TERM, with manifests."""
    layout = Layout(out)
    terms = [f"term {index:03d}" for index in range((count + IMAGES_PER_TERM - 1) // IMAGES_PER_TERM)]
    layout.remember_terms(terms)
    for number, term in enumerate(terms):
        folder = layout.downloaded(term)
        folder.mkdir(parents=True)
        rows = []
        for rank in range(min(IMAGES_PER_TERM, count - number * IMAGES_PER_TERM)):
            source = paths[(number * IMAGES_PER_TERM + rank) % len(paths)]
            name = f"{rank:04d}_{source.stem}.jpg"
            os.link(source, folder / name)
            rows.append({"rank": rank + 1, "url": f"http://127.0.0.1/{source.name}", "status": "downloaded",
                         "file": name})
        write_csv(layout.manifest(term), rows, MANIFEST_COLUMNS)


def gimg_boxes(out: Path) -> Boxes:
    """The detected boxes per source image name, from the datasets (one per face classified)."""
    found: Boxes = {}
    for path in sorted((out / "Datasets").glob("*.csv")):
        for row in pd.read_csv(path).itertuples():
            found.setdefault(row.image.split("_", 1)[1], []).append((row.left, row.top, row.right, row.bottom))
    return found


def run_gimg(out: Path, fused: bool, workers: int | None, min_face: float | None = None) -> float:
    """Seconds for gimg crop + classify (or the fused pass) over the tree, as users run them."""
    crop, execution = CropOptions(min_face=min_face), ExecutionOptions(workers=workers)
    start = time.perf_counter()
    if fused:
        outcomes = [o for stage in run_crop_classify(out, crop, execution=execution) for o in stage]
    else:
        outcomes = run_crop(out, crop, execution) + run_classify(out, execution=execution)
    elapsed = time.perf_counter() - start
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise SystemExit(f"gimg failed: {failed[0]}")
    return elapsed


class PeakRss:
    """The largest summed RSS of this process and its children, sampled every 50 ms in a thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me, start = psutil.Process(), time.perf_counter()
        while not self._stop.wait(0.05):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:  # a worker that exited between listing and reading
                    continue
            self.samples.append((time.perf_counter() - start, total))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def by_quarter(self) -> list[int]:
        """Peak RSS within each quarter of the run's duration: flat memory gives four similar numbers."""
        end = self.samples[-1][0] if self.samples else 0
        return [max((rss for t, rss in self.samples if q * end / 4 <= t <= (q + 1) * end / 4), default=0)
                for q in range(4)]


# Accuracy.

def _iou(a, b) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match(found: Boxes, truth: pd.DataFrame, images: list[str]) -> tuple[int, int, int, int]:
    """(truth faces matched, truth faces, detections matching a truth face, detections) over images."""
    matched = hits = detections = 0
    total = 0
    for image in images:
        labelled = [tuple(row) for row in truth.loc[truth.file == image, ["left", "top", "right", "bottom"]].values]
        boxes = found.get(image, [])
        total += len(labelled)
        matched += sum(any(_iou(t, b) >= 0.5 for b in boxes) for t in labelled)
        hits += sum(any(_iou(t, b) >= 0.5 for t in labelled) for b in boxes)
        detections += len(boxes)
    return matched, total, hits, detections


def accuracy(found: Boxes, scenes: pd.DataFrame, truth: pd.DataFrame, names: list[str], seed: int) -> dict:
    """Recall and precision on the labelled scene photos (and dogs.jpg) and on the pasted bench faces.

    Bench precision counts only images with plain backgrounds: scene backgrounds hold real, unlisted faces.
    """
    scene_images = sorted(set(scenes.file) | {"scene_dogs.jpg"})
    bench = [name for name in names if name.startswith("bench_")]
    plain = [name for name in bench if not has_scene_background(int(name[6:10]), seed)]
    s_match, s_total, s_hits, s_dets = match(found, scenes, scene_images)
    b_match, b_total, _, _ = match(found, truth, bench)
    _, _, p_hits, p_dets = match(found, truth, plain)
    return {
        "scene recall": f"{s_match}/{s_total} = {s_match / s_total:.1%}",
        "scene precision": f"{s_hits}/{s_dets} = {s_hits / max(s_dets, 1):.1%}",
        "bench recall": f"{b_match}/{b_total} = {b_match / max(b_total, 1):.1%}",
        "bench precision (plain backgrounds)": f"{p_hits}/{p_dets} = {p_hits / max(p_dets, 1):.1%}",
    }


def scene_truth(shared: Path) -> pd.DataFrame:
    boxes = pd.read_csv(shared / "scenes" / "boxes.csv")
    return pd.DataFrame({
        "file": "scene_" + boxes.file, "left": boxes.left, "top": boxes.top,
        "right": boxes.left + boxes.width, "bottom": boxes.top + boxes.height,
    })


def main() -> None:
    """Build the images, time both paths, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="bench images (scene photos included)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each path; rates are medians")
    parser.add_argument("--baseline-count", type=int, default=100,
                        help="images of the baseline's timed runs (evenly spread; the scene photos always in)")
    parser.add_argument("--sizes", default="100,1000,10000", help="image counts of the scaling and memory runs")
    parser.add_argument("--workers", type=int, default=None, help="gimg workers (default: one per CPU)")
    parser.add_argument("--min-face", type=float, default=None,
                        help="gimg's BlazeFace min_face in px (default: automatic, as users run it)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bench images")
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA, help="the shared data folder")
    options = parser.parse_args()
    require_shared_data(options.shared_data)
    sizes = [int(size) for size in options.sizes.split(",") if size]
    with tempfile.TemporaryDirectory(prefix="gimg-bench-") as temporary:
        work = Path(temporary)
        truth = build_bench_images(options.shared_data, work / "set", options.count, options.seed)
        paths = sorted((work / "set" / "images").glob("*.jpg"))
        names = [path.name for path in paths]
        scenes = scene_truth(options.shared_data)
        print(f"{len(paths)} images, {len(truth)} pasted faces, {len(scenes)} labelled scene faces; "
              f"{os.cpu_count()} CPUs")

        step = max(1, len(paths) // options.baseline_count)
        subset = sorted(set(paths[::step][: options.baseline_count]) | {p for p in paths if p.name.startswith("scene_")})
        baseline = Baseline.load(work)
        rates, base_found = [], {}
        for run in range(options.runs):
            crop_dir = work / f"baseline{run}"
            crop_dir.mkdir()
            start = time.perf_counter()
            base_found = baseline.run(subset, crop_dir)
            rates.append(len(subset) / (time.perf_counter() - start))
            print(f"baseline run {run + 1}: {rates[-1]:.2f} images/s over {len(subset)} images", flush=True)
        base_rate = statistics.median(rates)

        results = {}
        gimg_found = {}
        for fused in (False, True):
            label = "gimg pipeline (fused crop+classify)" if fused else "gimg crop + classify"
            rates = []
            for run in range(options.runs):
                out = work / f"gimg{int(fused)}{run}"
                make_tree(out, paths, len(paths))
                rates.append(len(paths) / run_gimg(out, fused, options.workers, options.min_face))
                print(f"{label} run {run + 1}: {rates[-1]:.1f} images/s over {len(paths)} images", flush=True)
            results[label] = statistics.median(rates)
            gimg_found = gimg_boxes(out)

        print(f"\n## Speed (median of {options.runs} runs)")
        print(f"baseline (original's method, 1 process): {base_rate:.2f} images/s")
        for label, rate in results.items():
            print(f"{label}: {rate:.1f} images/s = {rate / base_rate:.0f}x the baseline")

        print("\n## Detection at IoU >= 0.5")
        base_names = [path.name for path in subset]
        for label, found, images in (("baseline", base_found, base_names), ("gimg", gimg_found, names),
                                     ("gimg, baseline's images", gimg_found, base_names)):
            figures = accuracy(found, scenes, truth, images, options.seed)
            print(f"{label} ({len(images)} images): " + "; ".join(f"{k} {v}" for k, v in figures.items()))

        print("\n## Scaling and memory (gimg crop + classify)")
        print("| images | workers | images/s | peak RSS (MiB) | peak RSS by quarter of the run (MiB) |")
        print("|---|---|---|---|---|")
        runs = [(len(paths), 1), (len(paths), options.workers)] + [(size, options.workers) for size in sizes]
        for count, workers in runs:
            out = work / f"scale{count}_{workers}"
            make_tree(out, paths, count)
            with PeakRss() as rss:
                elapsed = run_gimg(out, False, workers, options.min_face)
            quarters = " / ".join(f"{value / 2**20:.0f}" for value in rss.by_quarter())
            shown = workers or os.cpu_count()
            print(f"| {count} | {shown} | {count / elapsed:.1f} | {rss.peak / 2**20:.0f} | {quarters} |", flush=True)
            for folder in ("Cropped_faces", "Datasets"):
                for path in (out / folder).rglob("*"):
                    if path.is_file():
                        path.unlink()


if __name__ == "__main__":
    main()
