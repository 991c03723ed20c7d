"""What the detector tests share: real photos as RGB arrays, recall on labelled boxes, UTKFace faces pasted at known
places with the box dlib HOG would give them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from gimg.blazeface import Detection
from gimg.crops import box_iou

# Where dlib HOG (upsample 1) puts its box in a 200x200 UTKFace chip: the mean over the 50 fixture faces.
DLIB_BOX_IN_CHIP = (0.04, 0.05, 0.89, 0.90)


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def box_of(face: Detection) -> tuple[int, int, int, int]:
    return face.left, face.top, face.right, face.bottom


def iou(truth: tuple[float, ...], face: Detection) -> float:
    """The IoU of a labelled box with a detection's box (gimg.crops.box_iou, the detectors' own)."""
    return float(box_iou(np.asarray(truth, dtype=float), np.asarray([box_of(face)], dtype=float))[0])


def scene_recall(detect: Callable[[np.ndarray], list[Detection]], photos: Path, boxes: pd.DataFrame) -> tuple[int, int]:
    """Labelled faces matched by a detection at IoU >= 0.5, and all detections, over the labelled photos."""
    matched = detections = 0
    for file, labelled in boxes.groupby("file"):
        faces = detect(rgb(photos / file))
        detections += len(faces)
        for row in labelled.itertuples():
            truth = (row.left, row.top, row.left + row.width, row.top + row.height)
            matched += any(iou(truth, face) >= 0.5 for face in faces)
    return matched, detections


def paste_faces(fixtures: Path, faces: list[tuple[int, tuple[int, int]]]) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """UTKFace fixture faces (the first, second, ...) resized to side px at each (side, corner) on a noisy grey
    1600x1200 canvas, and their dlib-like boxes."""
    # Not a real photo stretched to 1600x1200: on the dog photo one dog's face scores 0.52, just above min_score.
    noise = np.random.default_rng(0).normal(128, 20, (1200, 1600, 3))
    canvas = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
    sources = sorted((fixtures / "faces" / "images").glob("*.jpg"))
    boxes = []
    for index, (side, corner) in enumerate(faces):
        face = Image.open(sources[index]).convert("RGB")
        canvas.paste(face.resize((side, side), Image.LANCZOS), corner)
        boxes.append(tuple(origin + fraction * side for origin, fraction in zip(corner * 2, DLIB_BOX_IN_CHIP)))
    return np.asarray(canvas), boxes
