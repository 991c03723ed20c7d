"""Choose the face detectors' constants on the TUNING split of the bench images only, and print the evidence.

Usage: python bench/tune.py [--count 600] [--seed 0] [--set DIR]

Builds the bench images (bench/images.py) unless --set names a folder it wrote, keeps the tuning split (even-numbered
synthetic images; never the scene photos), and prints, for each candidate setting:
- YuNet: recall at IoU >= 0.5 and false detections per plain-background image for each model variant, smallest
  face in model-input pixels, largest face per pass and score threshold; detection ms per image (one thread);
- the box convention: YuNet's and BlazeFace's boxes against dlib HOG's (upsample 1) on the same faces;
- BlazeFace's MIN_FACE_FLOOR re-checked: recall of faces 30-48 px at each floor.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dlib
import numpy as np
import pandas as pd
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from images import SHARED_DATA, TUNING, build_bench_images, has_scene_background, require_shared_data  # noqa: E402

from gimg import models, yunet  # noqa: E402
from gimg.blazeface import detect_faces_blazeface  # noqa: E402

MODELS_DIR = SHARED_DATA.parent / "models" / "yunet"


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score_boxes(found: dict[str, list[tuple]], truth: pd.DataFrame, plain: set[str]) -> tuple[int, int, int, int]:
    """(truth faces found at IoU >= 0.5, truth faces, false detections on plain backgrounds, plain images)."""
    matched = false = 0
    for image, boxes in found.items():
        labelled = truth.loc[truth.file == image, ["left", "top", "right", "bottom"]].values.tolist()
        matched += sum(any(iou(t, b) >= 0.5 for b in boxes) for t in labelled)
        if image in plain:
            false += sum(not any(iou(t, b) >= 0.5 for t in labelled) for b in boxes)
    return matched, len(truth), false, len(plain)


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# Each setting overrides some of gimg.yunet's constants; the first is the shipped default. PROPOSAL_SCORE 1.0 turns
# the cascade off.
N, S = "yunet_n_dynamic.onnx", "yunet_s_dynamic.onnx"
SETTINGS = [
    {},
    {"DEFAULT_MIN_SCORE": 0.5},
    {"DEFAULT_MIN_SCORE": 0.7},
    {"MIN_FACE_SHARE": 0.0},
    {"MIN_INPUT_FACE": 12.0, "PROPOSAL_SCORE": 1.0},
    {"MIN_INPUT_FACE": 16.0, "PROPOSAL_SCORE": 1.0},
    {"MIN_INPUT_FACE": 20.0, "PROPOSAL_SCORE": 1.0},
    {"MODEL": S, "MIN_INPUT_FACE": 16.0, "PROPOSAL_SCORE": 1.0},
    {"MODEL": S, "MIN_INPUT_FACE": 20.0, "PROPOSAL_SCORE": 1.0},
    {"MODEL": S},
    {"MIN_INPUT_FACE": 14.0},
    {"PROPOSAL_SCORE": 0.02},
    {"PROPOSAL_SCORE": 0.10},
    {"VERIFY_INPUT_FACE": 24.0},
    {"VERIFY_CONTEXT": 3.0},
]
COLUMNS = ("MODEL", "DEFAULT_MIN_SCORE", "MIN_INPUT_FACE", "PROPOSAL_SCORE", "VERIFY_INPUT_FACE", "VERIFY_CONTEXT", "MIN_FACE_SHARE")


def yunet_sweep(images: dict[str, np.ndarray], truth: pd.DataFrame, plain: set[str], small: pd.DataFrame) -> None:
    """Recall, false detections and cost of each YuNet variant and pass setting, over score thresholds.

    Cost is given as model-input kilopixels per image (YuNet's time is about proportional to it, whatever the load)
    and as CPU ms per image on one thread (provisional on a shared machine).
    """
    print("\n## YuNet on the tuning split (first row: the shipped constants; PROPOSAL_SCORE 1: no cascade)")
    print("| " + " | ".join(COLUMNS) + " | recall | small-face recall | false/plain image |"
          " input kpx/image | CPU ms/image |")
    print("|---" * (len(COLUMNS) + 5) + "|")
    defaults = {name: getattr(yunet, name) for name in COLUMNS}
    infer, pixels = yunet._infer, [0]

    def counted(batch: list[np.ndarray], min_score: float):
        height, width = (max(image.shape[axis] for image in batch) for axis in (0, 1))
        pixels[0] += len(batch) * (-(-height // 32) * 32) * (-(-width // 32) * 32)
        return infer(batch, min_score)

    yunet._infer = counted
    for overrides in SETTINGS:
        setting = {**defaults, **overrides}
        if setting["MODEL"] not in yunet._sessions:
            yunet._sessions[setting["MODEL"]] = yunet.onnxruntime.InferenceSession(
                str(MODELS_DIR / setting["MODEL"]), sess_options=yunet._session().get_session_options(),
                providers=["CPUExecutionProvider"])
        for name, value in setting.items():
            setattr(yunet, name, value)
        pixels[0] = 0
        start = time.process_time()
        found = {name: [(d.left, d.top, d.right, d.bottom)
                        for d in yunet.detect_faces_yunet(image, min_score=setting["DEFAULT_MIN_SCORE"])]
                 for name, image in images.items()}
        cpu = 1000 * (time.process_time() - start) / len(images)
        matched, total, false, plains = score_boxes(found, truth, plain)
        small_matched, small_total, _, _ = score_boxes(found, small, set())
        shown = [str(setting[name]).split("_")[1] if name == "MODEL" else f"{setting[name]:g}" for name in COLUMNS]
        print(f"| {' | '.join(shown)} | {matched / total:.1%} | {small_matched / small_total:.1%}"
              f" ({small_matched}/{small_total}) | {false / plains:.3f} | {pixels[0] / len(images) / 1000:.0f} |"
              f" {cpu:.1f} |", flush=True)
    yunet._infer = infer
    for name, value in defaults.items():
        setattr(yunet, name, value)


def hog_boxes(images: dict[str, np.ndarray], cache: Path) -> dict[str, list[tuple]]:
    """dlib HOG at upsample 1 (the original's detector) on each image, kept in cache (a CSV) for the next run."""
    if cache.is_file():
        rows = pd.read_csv(cache)
        if set(rows.file) == set(images):
            return {name: [tuple(box) for box in group[["left", "top", "right", "bottom"]].values.tolist()
                           if box[2] > box[0]] for name, group in rows.groupby("file")}
    detector = dlib.get_frontal_face_detector()
    found, rows = {}, []
    for name, image in images.items():
        height, width = image.shape[:2]
        found[name] = [(max(r.left(), 0), max(r.top(), 0), min(r.right(), width), min(r.bottom(), height))
                       for r in detector(image, 1)]
        # An empty box row records an image without a face, so that the cache lists every image.
        rows += [dict(zip(("file", "left", "top", "right", "bottom"), (name, *box)))
                 for box in found[name] or [(0,) * 4]]
    pd.DataFrame(rows).to_csv(cache, index=False)
    return found


def box_convention(images: dict[str, np.ndarray], hog: dict[str, list[tuple]]) -> None:
    """YuNet's raw boxes and BlazeFace's boxes against dlib HOG's boxes of the same faces."""
    shifts_x, shifts_y, sides, blaze_ratio, blaze_shift = [], [], [], [], []
    for name, image in images.items():
        boxes, _, scores = yunet._candidates(image, yunet.pass_scales(image.shape[1], image.shape[0], 36), 0.6)
        raw = [boxes[i] for i in yunet._nms(boxes, scores)] if len(scores) else []
        blaze = detect_faces_blazeface(image, min_face=36)
        for truth in hog[name]:
            side = truth[2] - truth[0]
            best = max(raw, key=lambda b: iou(truth, b), default=None)
            if best is not None and iou(truth, best) >= 0.3:
                width, height = best[2] - best[0], best[3] - best[1]
                shifts_x.append(((truth[0] + truth[2]) - (best[0] + best[2])) / 2 / width)
                shifts_y.append(((truth[1] + truth[3]) - (best[1] + best[3])) / 2 / height)
                sides.append(side / ((width + height) / 2))
            match = max(blaze, key=lambda d: iou(truth, (d.left, d.top, d.right, d.bottom)), default=None)
            if match is not None and iou(truth, (match.left, match.top, match.right, match.bottom)) >= 0.3:
                blaze_ratio.append(side / (match.right - match.left))
                blaze_shift.append(((truth[1] + truth[3]) - (match.top + match.bottom)) / 2 / side)
    print(f"\n## Box convention against dlib HOG (upsample 1) on the tuning split ({len(sides)} YuNet faces, "
          f"{len(blaze_ratio)} BlazeFace faces; medians, [quartiles])")
    for label, values in (("YuNet centre shift x / w", shifts_x), ("YuNet centre shift y / h", shifts_y),
                          ("YuNet: dlib side / mean(w, h)", sides),
                          ("BlazeFace (BOX_SCALE applied): dlib side / side", blaze_ratio),
                          ("BlazeFace: dlib centre y shift / side", blaze_shift)):
        quartiles = np.percentile(values, [25, 50, 75]) if values else [float("nan")] * 3
        print(f"- {label}: {quartiles[1]:.3f} [{quartiles[0]:.3f}, {quartiles[2]:.3f}]")


def landmark_template(images: dict[str, np.ndarray]) -> None:
    """Where YuNet's 5 landmarks fall in the unit square of dlib's face chips (5-point predictor on YuNet's boxes).

    gimg.align.MEAN_FACE_5 holds these means, so chips made from YuNet's landmarks are framed like dlib's.
    """
    predictor = dlib.shape_predictor(str(models.landmarks_5_predictor()))
    placed = []
    for image in images.values():
        for face in yunet.detect_faces_yunet(image):
            shape = predictor(image, dlib.rectangle(face.left, face.top, face.right, face.bottom))
            details = dlib.get_face_chip_details(shape, 1000, 0.0)  # no padding: the chip is the unit square
            rect = details.rect
            centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
            cos, sin = math.cos(details.angle), math.sin(details.angle)
            offsets = np.asarray(face.keypoints) - centre
            unrotated = offsets @ np.array([[cos, -sin], [sin, cos]])  # rotate by -angle
            placed.append(unrotated / rect.width() + 0.5)
    placed = np.asarray(placed)
    print(f"\n## YuNet's landmarks in dlib's chip square ({len(placed)} faces of the tuning split; mean [sd])")
    for name, mean, sd in zip(yunet.KEYPOINTS, placed.mean(axis=0), placed.std(axis=0)):
        print(f"- {name}: ({mean[0]:.4f}, {mean[1]:.4f}) [{sd[0]:.3f}, {sd[1]:.3f}]")


def blazeface_floor(images: dict[str, np.ndarray], truth: pd.DataFrame, plain: set[str]) -> None:
    """BlazeFace's recall of 30-48 px faces and whole-split recall at fixed min_face values (MIN_FACE_FLOOR)."""
    print("\n## BlazeFace min_face on the tuning split (MIN_FACE_FLOOR re-checked)")
    print("| min_face px | recall, faces 30-48 px | recall, all | false/plain image |")
    print("|---|---|---|---|")
    sides = truth.right - truth.left
    near = truth[(sides >= 30) & (sides <= 48)]
    for floor in (30, 36, 42, 48):
        found = {name: [(d.left, d.top, d.right, d.bottom) for d in detect_faces_blazeface(image, min_face=floor)]
                 for name, image in images.items()}
        near_matched, near_total, _, _ = score_boxes(found, near, set())
        matched, total, false, plains = score_boxes(found, truth, plain)
        print(f"| {floor} | {near_matched}/{near_total} = {near_matched / max(near_total, 1):.1%} |"
              f" {matched / total:.1%} | {false / plains:.3f} |", flush=True)


def main() -> None:
    """Build or read the bench images and print the tuning tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600, help="bench images (both splits, scene photos included)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bench images")
    parser.add_argument("--set", type=Path, default=None,
                        help="a folder bench/images.py wrote (default: build one); dlib HOG's boxes are cached there")
    options = parser.parse_args()
    require_shared_data(SHARED_DATA)
    with tempfile.TemporaryDirectory(prefix="gimg-tune-") as temporary:
        folder = options.set or Path(temporary)
        if options.set is None:
            build_bench_images(SHARED_DATA, folder, options.count, options.seed)
        listed = pd.read_csv(folder / "images.csv")
        tuning = listed[listed.split == TUNING]
        truth = pd.read_csv(folder / "truth.csv")
        truth = truth[truth.file.isin(tuning.file)]
        images = {name: read(folder / "images" / name) for name in tuning.file}
        hog = hog_boxes(images, folder / "hog_tuning.csv")
    plain = {name for name in tuning.file if not has_scene_background(int(name[6:10]), options.seed)}
    large = set(tuning.file[tuning[["width", "height"]].max(axis=1) >= 1200])
    sides = truth.right - truth.left
    small = truth[(sides >= 36) & (sides <= 120) & truth.file.isin(large)]
    print(f"tuning split: {len(images)} images ({len(plain)} on plain backgrounds), {len(truth)} pasted faces, "
          f"{len(small)} of them small (36-120 px in images of 1200-2000 px)")
    matched, total, false, plains = score_boxes(hog, truth, plain)
    small_matched, small_total, _, _ = score_boxes(hog, small, set())
    print(f"dlib HOG upsample 1 (the original's detector): recall {matched / total:.1%}, small-face recall "
          f"{small_matched / small_total:.1%} ({small_matched}/{small_total}), false/plain image {false / plains:.3f}")
    box_convention(images, hog)
    landmark_template(images)
    yunet_sweep(images, truth, plain, small)
    blazeface_floor(images, truth, plain)
    print(f"\n(median image side {statistics.median(max(i.shape[:2]) for i in images.values()):.0f} px)")


if __name__ == "__main__":
    main()
