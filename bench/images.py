"""Build a reproducible set of web-photo-sized JPEGs with known faces for the face benchmarks.

Usage: python bench/images.py --out /tmp/bench --count 300

UTKFace faces are pasted at 40-400 px into the scene photos (cropped and resized to varied sizes) and into plain
backgrounds, 0-4 faces per image; a share of the images are large (1200-2000 px) with 2-5 small faces (dlib-size
boxes of 36-120 px); the scene photos are added unmodified. Even-numbered synthetic images form the TUNING split
and odd-numbered ones the EVALUATION split, each pasting its own half of the UTKFace faces; the scene photos are
evaluation only. Writes OUT/images/*.jpg, OUT/truth.csv (file, left, top, right, bottom, gender, source, split)
with one row per pasted face, and OUT/images.csv (file, split, kind, width, height) with one row per image.
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
TRUTH_COLUMNS = ["file", "left", "top", "right", "bottom", "gender", "source", "split"]
IMAGE_COLUMNS = ["file", "split", "kind", "width", "height"]
TUNING, EVALUATION = "tuning", "evaluation"
# Where dlib HOG (upsample 1) puts its face box inside a 200x200 UTKFace chip (mean over 50 faces): truth.csv
# holds this box, not the pasted square, so that detectors' dlib-like boxes can be matched at IoU >= 0.5.
DLIB_BOX_IN_CHIP = (0.04, 0.05, 0.89, 0.90)
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3)
FACE_COUNTS, FACE_COUNT_WEIGHTS = (0, 1, 2, 3, 4), (0.15, 0.35, 0.25, 0.15, 0.10)
SCENE_BACKGROUND_SHARE = 0.6
LONG_SIDE = (400, 2000)
FACE_SIDE = (40, 400)
# The "small" kind: a large photo with small faces, the case where a fast detector's shortcuts cost recall.
SMALL_KIND_SHARE = 0.25
SMALL_LONG_SIDE = (1200, 2000)
SMALL_FACE_BOX = (36, 120)  # dlib-size box side, px: the pasted square is this / (0.89 - 0.04)
SMALL_FACE_COUNTS = (2, 3, 4, 5)


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


def _frame(rng: np.random.Generator) -> tuple[tuple[int, int], bool, bool]:
    """The first draws of a synthetic photo: its (width, height), whether its background is a scene photo, and
    whether it is of the small-face kind."""
    small = bool(rng.random() < SMALL_KIND_SHARE)
    long_side = int(np.exp(rng.uniform(*np.log(SMALL_LONG_SIDE if small else LONG_SIDE))))
    aspect = ASPECTS[rng.integers(len(ASPECTS))]
    size = (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
    return size, bool(rng.random() < SCENE_BACKGROUND_SHARE), small


def has_scene_background(index: int, seed: int = 0) -> bool:
    """Whether bench_<index>.jpg has a scene-photo background, whose real faces truth.csv does not list."""
    return _frame(np.random.default_rng([seed, index]))[1]


def split_of(index: int) -> str:
    """The split of bench_<index>.jpg: detection constants are tuned on TUNING images, recall reported on the rest."""
    return TUNING if index % 2 == 0 else EVALUATION


def _face_side(rng: np.random.Generator, size: tuple[int, int], small: bool) -> int:
    """The side of the next pasted square: log-uniform over the kind's range."""
    if small:
        low, high = (round(side / (DLIB_BOX_IN_CHIP[2] - DLIB_BOX_IN_CHIP[0])) for side in SMALL_FACE_BOX)
    else:
        low, high = FACE_SIDE[0], min(FACE_SIDE[1], int(0.8 * min(size)))
    return int(np.exp(rng.uniform(np.log(low), np.log(high))))


def _composite(
    index: int, scenes: list[Path], faces: pd.DataFrame, face_dir: Path, seed: int
) -> tuple[Image.Image, list[dict], bool]:
    """The index-th synthetic photo, its pasted faces, and whether it is of the small kind.

    The same (seed, index) always gives the same photo; faces come from the split's own half of the UTKFace faces.
    """
    rng = np.random.default_rng([seed, index])
    size, scene, small = _frame(rng)
    if scene:
        image = _scene_background(scenes[rng.integers(len(scenes))], size, rng)
    else:
        image = _plain_background(size, rng)
    faces = faces.iloc[index % 2 :: 2]
    rows, taken = [], []
    count = rng.choice(SMALL_FACE_COUNTS) if small else rng.choice(FACE_COUNTS, p=FACE_COUNT_WEIGHTS)
    for _ in range(count):
        side = _face_side(rng, size, small)
        corner = _place(size, side, taken, rng)
        if corner is None:
            continue
        face = faces.iloc[rng.integers(len(faces))]
        chip = Image.open(face_dir / face.file).convert("RGB").resize((side, side), Image.LANCZOS)
        image.paste(chip, corner)
        taken.append((*corner, corner[0] + side, corner[1] + side))
        box = [round(origin + fraction * side) for origin, fraction in zip(corner * 2, DLIB_BOX_IN_CHIP)]
        rows.append(dict(zip(TRUTH_COLUMNS[1:], [*box, face.gender, face.file, split_of(index)])))
    return image, rows, small


def build_bench_images(shared_data: Path, out: Path, count: int, seed: int = 0) -> pd.DataFrame:
    """Write count JPEGs (the scene photos unmodified, the rest synthetic) to out/images and return truth.csv's rows.

    Also writes out/images.csv: each image's split, kind (scene, small or mixed) and size.
    """
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
    listed = []
    for photo in scenes:
        shutil.copyfile(photo, images / f"scene_{photo.name}")
        with Image.open(photo) as opened:
            listed.append({"file": f"scene_{photo.name}", "split": EVALUATION, "kind": "scene",
                           "width": opened.width, "height": opened.height})
    rows = []
    for index in range(count - len(scenes)):
        image, pasted, small = _composite(index, scenes, faces, face_dir, seed)
        name = f"bench_{index:04d}.jpg"
        quality = int(np.random.default_rng([seed, index, 1]).integers(75, 96))
        image.save(images / name, quality=quality)
        rows += [{"file": name, **row} for row in pasted]
        listed.append({"file": name, "split": split_of(index), "kind": "small" if small else "mixed",
                       "width": image.width, "height": image.height})
    pd.DataFrame(listed, columns=IMAGE_COLUMNS).to_csv(out / "images.csv", index=False)
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
