"""What a gender model looks at: occlusion-sensitivity heat maps of faces, for any backend, and a gallery of them.

A grey square slides over the face and its surroundings; at each place the backend predicts again, and the
heat of a pixel is the mean fall, over the squares covering it, of the log-odds of the class the model chose
for the whole face (log-odds, so that a region still shows when a confident probability barely moves). So hot
regions are the ones the decision rests on. Every backend is treated as a black box (the default path
re-aligns the occluded face, as it would a real one).

Backends built on the gender-v1 graph (the default net on its chips, and models from `gimg train`) can also be
run backwards (gimg.netgrad, with the train extra): the gradient map is the size of the gradient of the
log-odds with respect to each chip pixel, drawn back onto the crop through the chip's alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from .crops import Box, box_in_crop, decode_crop
from .errors import GimgError
from .facechips import align_chip, chip_to_image
from .faces import detect_faces
from .layout import atomic_path
from .options import ExplainOptions
from .registry import resolve

HEATMAP_SUFFIX = ".heatmap.png"
_CHUNK = 64
_THUMB = 160


@dataclass(frozen=True)
class OcclusionOptions:
    """The occluding square's side and step, as shares of the face box's side, its grey, and the scanned margin."""

    patch: float = 0.2
    stride: float = 0.08
    fill: int = 128
    margin: float = 0.2

    def __post_init__(self) -> None:
        if not (0 < self.patch <= 1 and 0 < self.stride <= self.patch and 0 <= self.fill <= 255 and self.margin >= 0):
            raise ValueError(f"bad occlusion options {self}: 0 < stride <= patch <= 1, fill 0-255, margin >= 0")


@dataclass(frozen=True)
class Explanation:
    """A face's p_female, the heat of each pixel of its crop (log-odds of evidence for the chosen class), its box."""

    p_female: float
    heat: np.ndarray
    box: Box


@dataclass(frozen=True)
class ExplainRecord:
    """What explain_faces did with one face: the heat map written, or why not."""

    face: str
    heatmap: str = ""
    p_female: float = float("nan")
    error: str = ""


def _squares(box: Box, shape: tuple[int, ...], options: OcclusionOptions) -> list[tuple[int, int, int, int]]:
    """The occluding squares (left, top, right, bottom) over the box and its margin, clipped to the image."""
    height, width = shape[:2]
    side = max(box.right - box.left, box.bottom - box.top)
    patch, step = max(1, round(options.patch * side)), max(1, round(options.stride * side))
    margin = options.margin * side
    left, top = int(max(0, box.left - margin)), int(max(0, box.top - margin))
    right, bottom = int(min(width, box.right + margin)), int(min(height, box.bottom + margin))
    return [(x, y, min(x + patch, width), min(y + patch, height))
            for y in range(top, max(top + 1, bottom - patch + step), step)
            for x in range(left, max(left + 1, right - patch + step), step)]


def _log_odds(p_female):
    """log(p / (1 - p)), clipped so that a saturated probability still shows how far it moved."""
    p_female = np.clip(p_female, 1e-6, 1 - 1e-6)
    return np.log(p_female / (1 - p_female))


def occlusion_heat(backend, image: np.ndarray, box: Box, options: OcclusionOptions = OcclusionOptions()) -> Explanation:
    """The occlusion-sensitivity heat map of one face (RGB crop and box in it) under a backend."""
    p_female = float(backend.predict([(image, box)])[0])
    chosen_female = p_female >= 0.5
    evidence = _log_odds(p_female)
    squares = _squares(box, image.shape, options)
    drops = []
    for start in range(0, len(squares), _CHUNK):
        views = []
        for left, top, right, bottom in squares[start : start + _CHUNK]:
            view = image.copy()
            view[top:bottom, left:right] = options.fill
            views.append((view, box))
        occluded = _log_odds(np.asarray(backend.predict(views), dtype=np.float64))
        drops.append(evidence - occluded if chosen_female else occluded - evidence)
    drop = np.concatenate(drops)
    total, covered = np.zeros(image.shape[:2]), np.zeros(image.shape[:2])
    for (left, top, right, bottom), value in zip(squares, drop, strict=True):
        total[top:bottom, left:right] += value
        covered[top:bottom, left:right] += 1
    heat = np.divide(total, covered, out=np.zeros_like(total), where=covered > 0)
    return Explanation(p_female, heat, box)


def _require_gradients(backend) -> None:
    """GimgError unless the backend can run backwards here (a gender-v1 graph, and the onnx package)."""
    if not hasattr(backend, "chip_gradient"):
        raise GimgError(f"the model {backend.name} gives no gradients: use occlusion heat maps")
    try:
        import onnx  # noqa: F401  (netgrad reads the graph with it)
    except ModuleNotFoundError:
        raise GimgError("gradient heat maps need the training extra: pip install 'gimg[train]'") from None


def gradient_heat(backend, image: np.ndarray, box: Box, _: OcclusionOptions | None = None) -> Explanation:
    """The gradient map of one face, for backends that can run backwards (chip_gradient); GimgError otherwise.

    The unused last parameter keeps the signature every heat-map method shares."""

    _require_gradients(backend)
    chip = align_chip(image, box, backend.spec)
    p_female = float(backend.predict_chips(chip[None])[0])
    saliency = np.abs(backend.chip_gradient(chip[None])[0]).sum(axis=2).astype(np.float32)
    matrix = chip_to_image(image, box, backend.spec)
    heat = cv2.warpAffine(saliency, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR)
    return Explanation(p_female, heat.astype(np.float64), box)


def render(image: np.ndarray, explanation: Explanation, scale: float | None = None) -> Image.Image:
    """The crop with its heat overlaid (red: the decision rests here), its box, and p_female written below."""
    scale = max(float(np.abs(explanation.heat).max()), 1e-6) if scale is None else scale
    level = np.clip(explanation.heat / scale, 0, 1)
    colours = cv2.cvtColor(cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = 0.15 + 0.5 * level[..., None]
    blended = (image * (1 - alpha) + colours * alpha).astype(np.uint8)
    picture = Image.new("RGB", (image.shape[1], image.shape[0] + 16), "white")
    picture.paste(Image.fromarray(blended), (0, 0))
    draw = ImageDraw.Draw(picture)
    box = explanation.box
    draw.rectangle([box.left, box.top, box.right - 1, box.bottom - 1], outline=(255, 255, 255))
    draw.text((3, image.shape[0] + 2), f"p_female {explanation.p_female:.2f}", fill="black")
    return picture


def face_box(face: Path, image: np.ndarray) -> Box:
    """The face's box in its crop: from faces.csv beside it when it lists the crop, else the biggest detected face."""
    listing = face.parent / "faces.csv"
    if listing.is_file():
        rows = pd.read_csv(listing)
        match = rows[rows.file == face.name]
        if len(match):
            return box_in_crop(match.iloc[0].to_dict())
    boxes = detect_faces(image)
    if not boxes:
        raise GimgError(f"no face found in {face}: give a crop from Cropped_faces/ or an image with a face")
    return max(boxes, key=lambda box: (box.right - box.left) * (box.bottom - box.top))


def heatmap_path(face: Path) -> Path:
    """Where the heat map of a face image goes: beside it, <name>.heatmap.png."""
    return face.with_name(face.stem + HEATMAP_SUFFIX)


def explain_faces(faces: list[Path], backend, options: ExplainOptions = ExplainOptions(),
                  occlusion: OcclusionOptions = OcclusionOptions()) -> list[ExplainRecord]:
    """Write a heat map (by options.method) beside each face image; one record per face, never raising for one."""
    heat_map = resolve("heat map method", options.method)
    if heat_map is gradient_heat:
        _require_gradients(backend)  # a backend that cannot run backwards fails once, not once per face
    records = []
    for face in map(Path, faces):
        try:
            image = decode_crop(face.read_bytes())
            explanation = heat_map(backend, image, face_box(face, image), occlusion)
            target = heatmap_path(face)
            with atomic_path(target) as temporary:
                render(image, explanation).save(temporary, format="PNG")
            records.append(ExplainRecord(str(face), str(target), explanation.p_female))
        except (OSError, ValueError, GimgError) as error:  # an unreadable file or a face-less image is its record
            records.append(ExplainRecord(str(face), error=f"{type(error).__name__}: {error}"))
    return records


def misclassified_gallery(wrong: pd.DataFrame, crops: Path, backend, target: Path, *, limit: int,
                          occlusion: OcclusionOptions = OcclusionOptions()) -> Path:
    """A grid of the occlusion heat maps of the first `limit` misclassified faces.

    wrong has gender and crop (a file in crops), as `gimg evaluate` lists its mistakes, most confident first;
    backend must be the model that made them.
    """
    tiles = []
    for row in wrong.head(limit).itertuples():
        face = Path(crops) / row.crop
        image = decode_crop(face.read_bytes())
        picture = render(image, occlusion_heat(backend, image, face_box(face, image), occlusion))
        picture.thumbnail((_THUMB, _THUMB + 16))
        tiles.append((picture, f"label: {row.gender}"))
    columns = max(1, min(6, len(tiles)))
    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (columns * _THUMB, rows * (_THUMB + 30)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (picture, caption) in enumerate(tiles):
        x, y = (index % columns) * _THUMB, (index // columns) * (_THUMB + 30)
        sheet.paste(picture, (x, y))
        draw.text((x + 3, y + picture.height + 1), caption, fill="firebrick")
    if not tiles:
        draw.text((4, 4), "no misclassified face", fill="black")
    with atomic_path(Path(target)) as temporary:
        sheet.save(temporary, format="PNG")
    return Path(target)
