"""YuNet face detection on onnxruntime: boxes and 5 landmarks, in two passes so small and large faces are found."""

from __future__ import annotations

import importlib.resources
import math

import cv2
import numpy as np
import onnxruntime

from . import models
from .blazeface import Detection
from .crops import box_iou
from .errors import ModelError

MODEL = "yunet_n_dynamic.onnx"
# YuNet's landmark order; "right" is the subject's right, which is on the image's left.
KEYPOINTS = ("right_eye", "left_eye", "nose", "right_mouth", "left_mouth")
STRIDES = (8, 16, 32)

# The smallest face looked for by default, px: the faces dlib HOG at upsample 1 (the original's detector) finds.
DEFAULT_MIN_FACE = 36.0
DEFAULT_MIN_SCORE = 0.6
# The face side, in model-input pixels, that the fine pass brings the smallest wanted face to, and the largest face
# side one pass finds well: faces larger than that are looked for in a coarser pass, MAX_INPUT_FACE / MIN_INPUT_FACE
# times smaller, until the whole image's short side fits.
MIN_INPUT_FACE = 16.0
MAX_INPUT_FACE = 256.0
MAX_UPSCALE = 2.0
NMS_IOU = 0.3
# Detections narrower than this share of min_face are dropped: what the passes find far below it is mostly noise.
MIN_FACE_SHARE = 0.5
# The cascade: fine-pass detections scoring at least PROPOSAL_SCORE but under min_score are looked at again in a
# region VERIFY_CONTEXT times their side, resized so that they are VERIFY_INPUT_FACE px wide; at most MAX_VERIFIED
# per image, best first.
PROPOSAL_SCORE = 0.05
VERIFY_INPUT_FACE = 32.0
VERIFY_CONTEXT = 2.0
MAX_VERIFIED = 16
# From YuNet's box (x, y, w, h) to dlib's convention, as the crop margins and the 5-point predictor expect:
# centre shifted by these fractions of w and h, side BOX_SIDE times the mean of w and h.
BOX_SHIFT_X, BOX_SHIFT_Y = -0.024, 0.032
BOX_SIDE = 0.917

def _session() -> onnxruntime.InferenceSession:
    """The YuNet model shipped in gimg/data, loaded once per process on one thread (one worker per core)."""
    return models.cached(("yunet", MODEL), _load)


def _load() -> onnxruntime.InferenceSession:
    resource = importlib.resources.files("gimg") / "data" / MODEL
    with importlib.resources.as_file(resource) as path:
        if not path.is_file():
            raise ModelError(f"{path} is missing: reinstall gimg")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def pass_scales(width: int, height: int, min_face: float) -> list[float]:
    """The scales of the passes over a width x height image: the fine one first, then coarser ones for large faces."""
    scale = min(MIN_INPUT_FACE / min_face, MAX_UPSCALE)
    scales = [scale]
    while min(width, height) * scales[-1] > MAX_INPUT_FACE:
        scales.append(scales[-1] * MIN_INPUT_FACE / MAX_INPUT_FACE)
    return scales


Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]


def _infer(images: list[np.ndarray], min_score: float) -> list[Candidates]:
    """One run of the model over BGR uint8 images, padded alike into one batch: for each image, boxes (n, 4) as
    x0, y0, x1, y1, landmarks (n, 5, 2) and scores (n,), in that image's pixels."""
    padded_height = -(-max(image.shape[0] for image in images) // 32) * 32
    padded_width = -(-max(image.shape[1] for image in images) // 32) * 32
    tensor = np.zeros((len(images), 3, padded_height, padded_width), np.float32)
    for index, image in enumerate(images):
        tensor[index, :, : image.shape[0], : image.shape[1]] = image.transpose(2, 0, 1)
    session = _session()
    outputs = dict(zip((output.name for output in session.get_outputs()), session.run(None, {"input": tensor})))
    found = []
    for index in range(len(images)):
        boxes, points, scores = [], [], []
        for stride in STRIDES:
            columns = padded_width // stride
            # YuNet's score, as OpenCV's FaceDetectorYN computes it: the geometric mean of class and objectness.
            classes, objects = outputs[f"cls_{stride}"][index, :, 0], outputs[f"obj_{stride}"][index, :, 0]
            score = np.sqrt(np.clip(classes, 0, 1) * np.clip(objects, 0, 1))
            keep = np.flatnonzero(score >= min_score)
            cell = np.stack([keep % columns, keep // columns], axis=1).astype(np.float32)
            raw = outputs[f"bbox_{stride}"][index, keep]
            centre = (cell + raw[:, :2]) * stride
            size = np.exp(raw[:, 2:]) * stride
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
            points.append((outputs[f"kps_{stride}"][index, keep].reshape(-1, 5, 2) + cell[:, None, :]) * stride)
            scores.append(score[keep])
        found.append((np.concatenate(boxes), np.concatenate(points), np.concatenate(scores)))
    return found


def _resized(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The RGB image resized to (width, height) as YuNet's BGR input, and the (x, y) factor back to its pixels."""
    # INTER_LINEAR: as many faces found as with INTER_AREA on the tuning split, at a tenth of its cost.
    level = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    factor = np.array([image.shape[1] / size[0], image.shape[0] / size[1]], np.float32)
    return np.ascontiguousarray(level[..., ::-1]), factor


def _to_source(found: Candidates, factor: np.ndarray, origin: tuple[int, int] = (0, 0)) -> Candidates:
    """Detections in a resized region's pixels mapped back to the source image's."""
    boxes, points, scores = found
    shift = np.array(origin, np.float32)
    return boxes * np.tile(factor, 2) + np.tile(shift, 2), points * factor + shift, scores


def _pass(image: np.ndarray, scale: float, min_score: float) -> Candidates:
    """One YuNet pass over the whole image resized by scale: boxes, landmarks and scores in source pixels."""
    height, width = image.shape[:2]
    level, factor = _resized(image, (max(1, round(width * scale)), max(1, round(height * scale))))
    return _to_source(_infer([level], min_score)[0], factor)


def _verify(image: np.ndarray, doubtful: np.ndarray, min_score: float) -> list[Candidates]:
    """A finer look at each doubtful face, in one batch: the region VERIFY_CONTEXT times its side around it,
    resized so that the face is VERIFY_INPUT_FACE px wide; what is found there overlapping that face is kept
    (other faces in the region are the whole-image passes' to find)."""
    height, width = image.shape[:2]
    tile = round(VERIFY_CONTEXT * VERIFY_INPUT_FACE)
    regions, places = [], []
    for box in doubtful:
        side = max(box[2] - box[0], box[3] - box[1])
        centre = (box[:2] + box[2:]) / 2
        left, top = (max(int(value - VERIFY_CONTEXT * side / 2), 0) for value in centre)
        right = min(int(centre[0] + VERIFY_CONTEXT * side / 2) + 1, width)
        bottom = min(int(centre[1] + VERIFY_CONTEXT * side / 2) + 1, height)
        scale = min(VERIFY_INPUT_FACE / side, MAX_UPSCALE)
        size = (min(tile, max(1, round((right - left) * scale))), min(tile, max(1, round((bottom - top) * scale))))
        region, factor = _resized(image[top:bottom, left:right], size)
        regions.append(region)
        places.append((factor, (left, top)))
    checked = []
    for box, found, (factor, origin) in zip(doubtful, _infer(regions, min_score), places):
        boxes, points, scores = _to_source(found, factor, origin)
        same = box_iou(box, boxes) > NMS_IOU
        checked.append((boxes[same], points[same], scores[same]))
    return checked


def _candidates(image: np.ndarray, scales: list[float], min_score: float) -> Candidates:
    """Every detection of every pass, in source pixels: boxes (n, 4), landmarks (n, 5, 2), scores (n,).

    Detections of the fine pass scoring between PROPOSAL_SCORE and min_score are checked again by _verify.
    """
    found = [_pass(image, scale, min(min_score, PROPOSAL_SCORE) if index == 0 else min_score)
             for index, scale in enumerate(scales)]
    boxes, points, scores = found[0]
    doubtful = np.flatnonzero(scores < min_score)
    if doubtful.size:
        found += _verify(image, boxes[doubtful[np.argsort(-scores[doubtful])][:MAX_VERIFIED]], min_score)
    sure = scores >= min_score
    found[0] = (boxes[sure], points[sure], scores[sure])
    return tuple(np.concatenate(parts) for parts in zip(*found))  # type: ignore[return-value]


def _nms(boxes: np.ndarray, scores: np.ndarray) -> list[int]:
    """Indices of the detections kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        order = rest[box_iou(boxes[best], boxes[rest]) <= NMS_IOU]
    return kept


def _to_detection(box: np.ndarray, points: np.ndarray, score: float, width: int, height: int) -> Detection:
    """A Detection whose box follows dlib's convention (BOX_SHIFT_*, BOX_SIDE), clipped to the image."""
    box_width, box_height = box[2] - box[0], box[3] - box[1]
    centre_x = (box[0] + box[2]) / 2 + BOX_SHIFT_X * box_width
    centre_y = (box[1] + box[3]) / 2 + BOX_SHIFT_Y * box_height
    half = BOX_SIDE * (box_width + box_height) / 4
    return Detection(
        left=max(round(centre_x - half), 0),
        top=max(round(centre_y - half), 0),
        right=min(round(centre_x + half), width),
        bottom=min(round(centre_y + half), height),
        score=float(score),
        keypoints=tuple((float(x), float(y)) for x, y in points),
    )


def detect_faces_yunet(
    image: np.ndarray,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    min_face: float | None = None,
) -> list[Detection]:
    """The faces in an RGB uint8 image, most confident first, down to about min_face px (None: DEFAULT_MIN_FACE).

    Each Detection's keypoints are YuNet's 5 landmarks in KEYPOINTS order, in source pixels.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (height, width, 3), got {image.dtype} {image.shape}")
    if not 0 < min_score < 1:
        raise ValueError(f"min_score must be between 0 and 1, got {min_score}")
    smallest = DEFAULT_MIN_FACE if min_face is None else min_face
    if not (math.isfinite(smallest) and smallest > 0):
        raise ValueError(f"min_face must be a positive number of pixels, got {min_face}")
    height, width = image.shape[:2]
    boxes, points, scores = _candidates(image, pass_scales(width, height, smallest), min_score)
    wide = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= MIN_FACE_SHARE * smallest
    boxes, points, scores = boxes[wide], points[wide], scores[wide]
    return [_to_detection(boxes[i], points[i], scores[i], width, height) for i in _nms(boxes, scores)]
