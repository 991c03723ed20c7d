"""Build a reproducible set of web-photo-sized JPEGs with known faces for the face benchmarks.

Usage: python bench/images.py --out /tmp/bench --count 300

UTKFace faces are pasted at 40-400 px into the scene photos (cropped and resized to varied sizes) and into plain
backgrounds, 0-4 faces per image, and the scene photos are added unmodified. Writes OUT/images/*.jpg and
OUT/truth.csv (file, left, top, right, bottom, gender, source) with one row per pasted face.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRUTH_COLUMNS = ["file", "left", "top", "right", "bottom", "gender", "source"]
# Where dlib HOG (upsample 1) puts its face box inside a 200x200 UTKFace chip (mean over 50 faces): truth.csv
# holds this box, not the pasted square, so that detectors' dlib-like boxes can be matched at IoU >= 0.5.
DLIB_BOX_IN_CHIP = (0.04, 0.05, 0.89, 0.90)
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3)
FACE_COUNTS, FACE_COUNT_WEIGHTS = (0, 1, 2, 3, 4), (0.15, 0.35, 0.25, 0.15, 0.10)
SCENE_BACKGROUND_SHARE = 0.6
LONG_SIDE = (400, 2000)
FACE_SIDE = (40, 400)


def _scene_background(photo: Path, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A random crop of a scene photo with the target's aspect, resized to size."""
    image = Image.open(photo).convert("RGB")
    aspect = size[0] / size[1]
    width = min(image.width, round(image.height * aspect))
    height = min(image.height, round(width / aspect))
    width = round(height * aspect)
    zoom = rng.uniform(0.6, 1.0)
    width, height = max(1, round(width * zoom)), max(1, round(height * zoom))
    left = int(rng.integers(0, image.width - width + 1))
    top = int(rng.integers(0, image.height - height + 1))
    return image.crop((left, top, left + width, top + height)).resize(size, Image.LANCZOS)


def _plain_background(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A flat colour, a vertical gradient, or coloured noise, like product shots and studio portraits."""
    width, height = size
    colour = rng.integers(0, 256, 3)
    kind = rng.integers(0, 3)
    if kind == 0:
        pixels = np.broadcast_to(colour, (height, width, 3))
    elif kind == 1:
        other = rng.integers(0, 256, 3)
        ramp = np.linspace(0, 1, height)[:, None, None]
        pixels = np.broadcast_to(colour * (1 - ramp) + other * ramp, (height, width, 3))
    else:
        pixels = colour + rng.normal(0, 25, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(2)) if kind == 2 else image


def _place(size: tuple[int, int], side: int, taken: list[tuple[int, int, int, int]], rng: np.random.Generator):
    """A top-left corner for a side x side face that overlaps no placed face, or None after 30 tries."""
    width, height = size
    for _ in range(30):
        left = int(rng.integers(0, width - side + 1))
        top = int(rng.integers(0, height - side + 1))
        if all(left >= r or left + side <= l or top >= b or top + side <= t for l, t, r, b in taken):
            return left, top
    return None


def _frame(rng: np.random.Generator) -> tuple[tuple[int, int], bool]:
    """The first draws of a synthetic photo: its (width, height), and whether its background is a scene photo."""
    long_side = int(np.exp(rng.uniform(*np.log(LONG_SIDE))))
    aspect = ASPECTS[rng.integers(len(ASPECTS))]
    size = (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
    return size, bool(rng.random() < SCENE_BACKGROUND_SHARE)


def has_scene_background(index: int, seed: int = 0) -> bool:
    """Whether bench_<index>.jpg has a scene-photo background, whose real faces truth.csv does not list."""
    return _frame(np.random.default_rng([seed, index]))[1]


def _composite(
    index: int, scenes: list[Path], faces: pd.DataFrame, face_dir: Path, seed: int
) -> tuple[Image.Image, list[dict]]:
    """The index-th synthetic photo and its pasted faces; the same (seed, index) always gives the same photo."""
    rng = np.random.default_rng([seed, index])
    size, scene = _frame(rng)
    if scene:
        image = _scene_background(scenes[rng.integers(len(scenes))], size, rng)
    else:
        image = _plain_background(size, rng)
    rows, taken = [], []
    for _ in range(rng.choice(FACE_COUNTS, p=FACE_COUNT_WEIGHTS)):
        largest = min(FACE_SIDE[1], int(0.8 * min(size)))
        side = int(np.exp(rng.uniform(np.log(FACE_SIDE[0]), np.log(largest))))
        corner = _place(size, side, taken, rng)
        if corner is None:
            continue
        face = faces.iloc[rng.integers(len(faces))]
        chip = Image.open(face_dir / face.file).convert("RGB").resize((side, side), Image.LANCZOS)
        image.paste(chip, corner)
        taken.append((*corner, corner[0] + side, corner[1] + side))
        box = [round(origin + fraction * side) for origin, fraction in zip(corner * 2, DLIB_BOX_IN_CHIP)]
        rows.append(dict(zip(TRUTH_COLUMNS[1:], [*box, face.gender, face.file])))
    return image, rows


def build_bench_images(shared_data: Path, out: Path, count: int, seed: int = 0) -> pd.DataFrame:
    """Write count JPEGs (the scene photos unmodified, the rest synthetic) to out/images and return truth.csv's rows."""
    scene_dir = shared_data / "scenes" / "photos"
    face_dir = shared_data / "faces" / "utkface" / "images"
    scenes = sorted(scene_dir.glob("*.jpg"))
    faces = pd.read_csv(shared_data / "faces" / "utkface" / "labels.csv").sort_values("file", ignore_index=True)
    if not scenes or faces.empty:
        raise FileNotFoundError(f"no scene photos in {scene_dir} or no faces in {face_dir}")
    if count < len(scenes):
        raise ValueError(f"count must be at least {len(scenes)} (the unmodified scene photos), got {count}")
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for photo in scenes:
        shutil.copyfile(photo, images / f"scene_{photo.name}")
    rows = []
    for index in range(count - len(scenes)):
        image, pasted = _composite(index, scenes, faces, face_dir, seed)
        name = f"bench_{index:04d}.jpg"
        quality = int(np.random.default_rng([seed, index, 1]).integers(75, 96))
        image.save(images / name, quality=quality)
        rows += [{"file": name, **row} for row in pasted]
    truth = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    truth.to_csv(out / "truth.csv", index=False)
    return truth


def require_shared_data(shared_data: Path) -> None:
    """Exit 2 with one line when the shared data the bench images are made from is absent."""
    if not shared_data.is_dir():
        print(f"error: {shared_data} is absent: the bench images are made from ../shared/data", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """Parse the command line and build the image set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write images/ and truth.csv into")
    parser.add_argument("--count", type=int, default=300, help="number of images, scene photos included")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images)")
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA, help="the shared data folder")
    options = parser.parse_args()
    require_shared_data(options.shared_data)
    try:
        truth = build_bench_images(options.shared_data, options.out, options.count, options.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {options.count} images and {len(truth)} pasted faces to {options.out}")


if __name__ == "__main__":
    main()
