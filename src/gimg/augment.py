"""Random variations of aligned face chips for training: flips, small rotations, scale and crop jitter, colour
jitter, blur and random erasing, drawn from a seeded generator so that a run can be repeated exactly."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .facechips import ChipSpec

# Source chips are rendered with this much padding, so that rotated, shrunk or shifted views stay inside them.
SOURCE_PADDING = 0.45


@dataclass(frozen=True)
class Augmentation:
    """The size of each random variation; a probability for the all-or-nothing ones (flip, blur, erase)."""

    flip: float = 0.5
    rotation_degrees: float = 10.0
    scale: float = 0.08
    shift: float = 0.04
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    blur: float = 0.25
    blur_sigma: tuple[float, float] = (0.4, 1.0)
    erase: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.12)


def source_spec(spec: ChipSpec) -> ChipSpec:
    """How to render the wide chip that augmented views of `spec` chips are cut from."""
    return ChipSpec(size=spec.size * spec.supersample, padding=SOURCE_PADDING)


def _source_to_chip(spec: ChipSpec) -> np.ndarray:
    """The 3x3 map from source-chip pixels to the pixels of a spec chip rendered at size x supersample."""
    side = spec.size * spec.supersample
    ratio = (1 + 2 * SOURCE_PADDING) / (1 + 2 * spec.padding)
    offset = (spec.padding - SOURCE_PADDING) * side / (1 + 2 * spec.padding)
    return np.array([[ratio, 0, offset], [0, ratio, offset], [0, 0, 1]], dtype=np.float64)


def _jitter(side: int, options: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """A random rotation, scale and shift about the chip's centre, as a 3x3 matrix."""
    angle = rng.uniform(-options.rotation_degrees, options.rotation_degrees)
    scale = 1 + rng.uniform(-options.scale, options.scale)
    matrix = np.vstack([cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale), [0, 0, 1]])
    matrix[:2, 2] += rng.uniform(-options.shift, options.shift, size=2) * side
    return matrix


def _colour(chip: np.ndarray, options: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation jitter of a float RGB chip."""
    chip = chip * (1 + rng.uniform(-options.brightness, options.brightness))
    grey = chip.mean(axis=2, keepdims=True)
    chip = grey + (chip - grey) * (1 + rng.uniform(-options.saturation, options.saturation))
    return chip.mean() + (chip - chip.mean()) * (1 + rng.uniform(-options.contrast, options.contrast))


def _erase(chip: np.ndarray, options: Augmentation, rng: np.random.Generator) -> None:
    """Fill a random rectangle of the chip with noise, in place."""
    side = chip.shape[0]
    area = rng.uniform(*options.erase_area) * side * side
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    height = int(min(side, max(1, round(np.sqrt(area * aspect)))))
    width = int(min(side, max(1, round(np.sqrt(area / aspect)))))
    top, left = rng.integers(0, side - height + 1), rng.integers(0, side - width + 1)
    chip[top : top + height, left : left + width] = rng.uniform(0, 255, size=(height, width, 3))


def augmented_chip(source: np.ndarray, spec: ChipSpec, options: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """One random view (spec.size square, uint8 RGB) of a face from its source chip (rendered by source_spec)."""
    side = spec.size * spec.supersample
    matrix = _jitter(side, options, rng) @ _source_to_chip(spec)
    view = cv2.warpAffine(source, matrix[:2], (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if side != spec.size:
        view = cv2.resize(view, (spec.size, spec.size), interpolation=cv2.INTER_AREA)
    chip = _colour(view.astype(np.float32), options, rng)
    if rng.random() < options.flip:
        chip = chip[:, ::-1]
    if rng.random() < options.blur:
        chip = cv2.GaussianBlur(np.ascontiguousarray(chip), (0, 0), rng.uniform(*options.blur_sigma))
    if rng.random() < options.erase:
        chip = np.array(chip)
        _erase(chip, options, rng)
    return np.clip(chip, 0, 255).astype(np.uint8)


def augmented_batch(
    sources: np.ndarray, spec: ChipSpec, options: Augmentation, rng: np.random.Generator
) -> np.ndarray:
    """A random view of each source chip, as an N x size x size x 3 uint8 array."""
    return np.stack([augmented_chip(source, spec, options, rng) for source in sources])
