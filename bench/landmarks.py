"""Face chips aligned from a detector's own 5 landmarks (YuNet's), framed as dlib's 5-point predictor frames them."""

from __future__ import annotations

from typing import Sequence

import dlib
import numpy as np

# dlib's mean face (dlib/image_transforms/interpolation.h, get_face_chip_details: points 17-67 of the 68-point
# layout, in a unit square), at the points YuNet marks: the centres of the eyes (mean of points 36-41 and 42-47),
# the nose tip (30) and the mouth corners (48, 54), in YuNet's order (the subject's right eye first). Its 5-point
# branch maps the predictor's eye corners and nose base to the same unit square, so chips made from these points
# are framed like chips made from the predictor's.
_EYE_RIGHT_X = (0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743)
_EYE_RIGHT_Y = (0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077)
_EYE_LEFT_X = (0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335)
_EYE_LEFT_Y = (0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099)
MEAN_FACE_5 = np.array([
    (np.mean(_EYE_RIGHT_X), np.mean(_EYE_RIGHT_Y)),
    (np.mean(_EYE_LEFT_X), np.mean(_EYE_LEFT_Y)),
    (0.490127, 0.515625),
    (0.254149, 0.780233),
    (0.726104, 0.780233),
])


def chip_details(keypoints: Sequence[tuple[float, float]], size: int, padding: float) -> dlib.chip_details:
    """Where dlib extracts a size x size chip with this padding, from 5 landmarks in YuNet's order.

    The same similarity fit as dlib.get_face_chip_details, to MEAN_FACE_5 instead of the predictor's points.
    """
    points = np.asarray(keypoints, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected 5 finite (x, y) landmarks, got an array of shape {points.shape}")
    if size <= 0 or padding < 0:
        raise ValueError(f"size must be positive and padding not negative, got {size} and {padding}")
    template = (padding + MEAN_FACE_5) / (2 * padding + 1) * size
    return dlib.chip_details(
        dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in template]),
        dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in points]),
        dlib.chip_dims(size, size),
    )


def landmark_chip(
    image: np.ndarray, keypoints: Sequence[tuple[float, float]], *, size: int = 32, padding: float = 0.2
) -> np.ndarray:
    """The size x size RGB chip of the face whose 5 YuNet landmarks (image pixels) are given, as dlib cuts chips."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (height, width, 3), got {image.dtype} {image.shape}")
    return np.asarray(dlib.extract_image_chip(np.ascontiguousarray(image), chip_details(keypoints, size, padding)))
