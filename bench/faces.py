"""Time the original's face method against gimg's crop + classify on the same images, with recall and memory.

Usage: python bench/faces.py [--count 600] [--runs 3] [--baseline-count 0] [--sizes 1000,10000] [--workers N]
                             [--scale-detector yunet]

Only the EVALUATION split of the bench images is timed and scored (odd-numbered synthetic images and the 12 scene
photos, bench/images.py); the detectors' constants were chosen on the TUNING split (bench/tune.py).
- baseline: the original's method in one process: full decode (Pillow, as face_recognition.load_image_file),
  dlib HOG at upsample 1, 68-point landmarks written beside each crop (50/30 px margins, cv2.imwrite), then each
  crop read back and the Levi-Hassner net in OpenCV DNN at batch 1 on 227x227 (random weights from
  tests/caffe_fixture.py when cnn_age_gender/gender_net.caffemodel is absent: the timing is the same).
- gimg: run_crop + run_classify, and the fused run_crop_classify that `gimg pipeline` runs, with each detector
  setting of PATHS and one worker per CPU: OpenCV full decode, the detector, crops written as JPEG, 5-point
  landmarks and 32x32 chips, the ONNX gender net; no landmark files.
Rates are medians over runs, per machine and per core; recall and precision at IoU >= 0.5 on the labelled scene
photos, on all pasted faces and on the small ones (36-120 px in 1200-2000 px images); peak RSS of the process tree
(psutil, sampled) for --sizes images reused by hardlinks.
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
    from images import EVALUATION, SHARED_DATA, build_bench_images, has_scene_background, require_shared_data
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


@dataclass(frozen=True)
class GimgPath:
    """One way of running gimg: a detector setting, and the two stages apart or fused (`gimg pipeline`)."""

    label: str
    detector: str
    min_face: float | None
    fused: bool


PATHS = [
    GimgPath("blazeface, automatic min_face, crop + classify", "blazeface", None, False),
    GimgPath("blazeface, automatic min_face, fused (pipeline)", "blazeface", None, True),
    GimgPath("blazeface --min-face 30, fused", "blazeface", 30.0, True),
    GimgPath("yunet (the default; min_face 36 px), crop + classify", "yunet", None, False),
    GimgPath("yunet, fused (pipeline)", "yunet", None, True),
]


def run_gimg(out: Path, path: GimgPath, workers: int | None) -> float:
    """Seconds for one gimg path over the tree, as users run it: the bench's only calls into gimg's stages."""
    crop, execution = CropOptions(detector=path.detector, min_face=path.min_face), ExecutionOptions(workers=workers)
    start = time.perf_counter()
    if path.fused:
        stages = run_crop_classify(out, crop, execution=execution)
        outcomes = [outcome for stage in stages for outcome in stage]
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
    """Recall and precision on the labelled scene photos (and dogs.jpg), and on the pasted faces of names.

    Pasted-face precision counts only images with plain backgrounds: scene backgrounds hold real, unlisted faces.
    """
    scene_images = sorted(set(scenes.file) | {"scene_dogs.jpg"})
    bench = [name for name in names if name.startswith("bench_")]
    plain = [name for name in bench if not has_scene_background(int(name[6:10]), seed)]
    s_match, s_total, s_hits, s_dets = match(found, scenes, scene_images)
    b_match, b_total, _, _ = match(found, truth, bench)
    m_match, m_total, _, _ = match(found, truth[truth.small], bench)
    _, _, p_hits, p_dets = match(found, truth, plain)
    return {
        "scene recall": f"{s_match}/{s_total} ({s_match / s_total:.1%})",
        "pasted recall": f"{b_match}/{b_total} ({b_match / max(b_total, 1):.1%})",
        "small-face recall": f"{m_match}/{m_total} ({m_match / max(m_total, 1):.1%})",
        "scene precision": f"{s_hits}/{s_dets}",
        "pasted precision (plain backgrounds)": f"{p_hits}/{p_dets}",
    }


def scene_truth(shared: Path) -> pd.DataFrame:
    boxes = pd.read_csv(shared / "scenes" / "boxes.csv")
    return pd.DataFrame({
        "file": "scene_" + boxes.file, "left": boxes.left, "top": boxes.top,
        "right": boxes.left + boxes.width, "bottom": boxes.top + boxes.height,
    })


def describe() -> None:
    """Say what each side does per image, so that the table compares like with like."""
    print("What each side does per image:")
    print("- baseline (1 process, 1 core): Pillow full decode; dlib HOG upsample 1; 68-point landmarks written as .txt;"
          " crops written (cv2.imwrite); each crop read back; Levi-Hassner (OpenCV DNN, 227x227, batch 1)")
    print("- gimg (one worker per core): OpenCV full decode; the path's detector; crops written as JPEG (no"
          " landmark files); 5-point landmarks (dlib) and a 32x32 chip per face; ONNX gender net (batched)")


def cpu_seconds() -> float:
    """CPU time of this process and of its finished, joined children (gimg's pool workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def time_baseline(baseline: Baseline, subset: list[Path], work: Path, runs: int) -> tuple[float, float, Boxes]:
    """The baseline's median images/s and median CPU ms per image over runs, and its boxes."""
    rates, cpu, found = [], [], {}
    for run in range(runs):
        crop_dir = work / f"baseline{run}"
        crop_dir.mkdir()
        start, start_cpu = time.perf_counter(), cpu_seconds()
        found = baseline.run(subset, crop_dir)
        rates.append(len(subset) / (time.perf_counter() - start))
        cpu.append(1000 * (cpu_seconds() - start_cpu) / len(subset))
        print(f"baseline run {run + 1}: {rates[-1]:.2f} images/s, {cpu[-1]:.0f} CPU ms per image over "
              f"{len(subset)} images", flush=True)
    return statistics.median(rates), statistics.median(cpu), found


def scaling(work: Path, paths: list[Path], sizes: list[int], path: GimgPath, workers: int | None) -> None:
    """Images/s and peak RSS of one gimg path over growing runs: flat memory gives similar quarters."""
    print(f"\n## Scaling and memory ({path.label}; images reused by hardlinks)")
    print("| images | workers | images/s | peak RSS (MiB) | peak RSS by quarter of the run (MiB) |")
    print("|---|---|---|---|---|")
    for count, pool in [(len(paths), 1), *((size, workers) for size in sizes)]:
        out = work / f"scale{count}_{pool}"
        make_tree(out, paths, count)
        with PeakRss() as rss:
            elapsed = run_gimg(out, path, pool)
        quarters = " / ".join(f"{value / 2**20:.0f}" for value in rss.by_quarter())
        print(f"| {count} | {pool or os.cpu_count()} | {count / elapsed:.1f} | {rss.peak / 2**20:.0f} | {quarters} |",
              flush=True)
        for folder in ("Cropped_faces", "Datasets"):
            for file in (out / folder).rglob("*"):
                if file.is_file():
                    file.unlink()


def main() -> None:
    """Build the images, time both sides on the evaluation split, and print every figure the README quotes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600, help="bench images of both splits (scene photos included)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each path; rates are medians")
    parser.add_argument("--baseline-count", type=int, default=0,
                        help="time the baseline on this many evenly spread evaluation images (scene photos "
                             "always in) instead of all of them; 0: all, the same images as gimg")
    parser.add_argument("--sizes", default="1000,10000", help="image counts of the scaling and memory runs")
    parser.add_argument("--scale-detector", default="yunet", help="detector of the scaling runs")
    parser.add_argument("--workers", type=int, default=None, help="gimg workers (default: one per CPU)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bench images")
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA, help="the shared data folder")
    options = parser.parse_args()
    require_shared_data(options.shared_data)
    sizes = [int(size) for size in options.sizes.split(",") if size]
    workers = options.workers or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="gimg-bench-") as temporary:
        work = Path(temporary)
        truth = build_bench_images(options.shared_data, work / "set", options.count, options.seed)
        listed = pd.read_csv(work / "set" / "images.csv")
        evaluation = listed[listed.split == EVALUATION]
        large = set(evaluation.file[evaluation[["width", "height"]].max(axis=1) >= 1200])
        truth = truth[truth.file.isin(evaluation.file)]
        sides = truth.right - truth.left
        truth = truth.assign(small=(sides >= 36) & (sides <= 120) & truth.file.isin(large))
        paths = [work / "set" / "images" / name for name in sorted(evaluation.file)]
        names = [path.name for path in paths]
        scenes = scene_truth(options.shared_data)
        print(f"evaluation split: {len(paths)} images, {len(truth)} pasted faces ({int(truth.small.sum())} small: "
              f"36-120 px in 1200-2000 px images), {len(scenes)} labelled scene faces; {workers} workers on "
              f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start")
        describe()

        subset, named = paths, f"the same {len(paths)} images as gimg"
        if options.baseline_count:
            step = max(1, len(paths) // options.baseline_count)
            subset = sorted(set(paths[::step][: options.baseline_count]) | {p for p in paths if "scene_" in p.name})
            named = f"{len(subset)} of gimg's {len(paths)} images (one in {step}, and the scene photos)"
        print(f"baseline timed on {named}")
        base_rate, base_cpu, base_found = time_baseline(Baseline.load(work), subset, work, options.runs)

        rates, cpu, found = {}, {}, {}
        for path in PATHS:
            runs, cpus = [], []
            for run in range(options.runs):
                out = work / f"gimg_{PATHS.index(path)}_{run}"
                make_tree(out, paths, len(paths))
                start_cpu = cpu_seconds()
                runs.append(len(paths) / run_gimg(out, path, workers))
                cpus.append(1000 * (cpu_seconds() - start_cpu) / len(paths))
                print(f"{path.label} run {run + 1}: {runs[-1]:.1f} images/s, {cpus[-1]:.0f} CPU ms per image",
                      flush=True)
            rates[path], cpu[path] = statistics.median(runs), statistics.median(cpus)
            found[path] = gimg_boxes(out)

        print(f"\n## Speed and detection (median of {options.runs} runs; load average now "
              f"{os.getloadavg()[0]:.1f})")
        print("CPU ms per image: all processes' CPU time over the images (gimg's pool workers included), which other"
              " jobs on the machine change far less than the wall-clock rates; 'CPU ratio' is the baseline's CPU ms"
              " per image over the path's, the speed-up per core on an otherwise idle machine.")
        print("| path | cores | images/s | images/s per core | vs baseline | vs baseline per core | CPU ms per image |"
              " CPU ratio | scene recall | pasted recall | small-face recall | scene precision |"
              " pasted precision (plain) |")
        print("|---" * 13 + "|")
        base_names = [path.name for path in subset]
        figures = accuracy(base_found, scenes, truth, base_names, options.seed)
        print(f"| baseline (original's method) | 1 | {base_rate:.2f} | {base_rate:.2f} | 1x | 1x | {base_cpu:.0f} |"
              " 1x | " + " | ".join(figures.values()) + " |")
        for path, rate in rates.items():
            figures = accuracy(found[path], scenes, truth, names, options.seed)
            print(f"| gimg {path.label} | {workers} | {rate:.1f} | {rate / workers:.1f} | {rate / base_rate:.1f}x |"
                  f" {rate / workers / base_rate:.1f}x | {cpu[path]:.1f} | {base_cpu / cpu[path]:.1f}x | "
                  + " | ".join(figures.values()) + " |")
        if subset != paths:
            for path in PATHS:
                figures = accuracy(found[path], scenes, truth, base_names, options.seed)
                print(f"gimg {path.label} on the baseline's {len(subset)} images: "
                      + "; ".join(f"{k} {v}" for k, v in figures.items()))

        chosen = next(path for path in PATHS if path.detector == options.scale_detector and not path.fused)
        scaling(work, paths, sizes, chosen, options.workers)


if __name__ == "__main__":
    main()
