"""Image validation: sniff the bytes, decode under a pixel limit, and turn any raster image into an upright RGB JPEG."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from functools import lru_cache

import imagehash
from PIL import Image, ImageCms, ImageOps

MIN_SIDE = 32
MAX_PIXELS = 89_478_485  # Pillow's own default: about 8,000 x 11,000
JPEG_QUALITY = 95
_ORIENTATION = 0x0112
_MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)
_PILLOW_FORMATS = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "tif": "TIFF", "webp": "WEBP"}

# gimg checks every image against its own pixel limit and reports a bomb as a manifest row, so Pillow's
# warning for images between its limit and twice its limit is noise on the terminal.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Kept:
    """A valid image as gimg keeps it: the JPEG bytes, their sha256, and a perceptual hash (hex)."""

    jpeg: bytes
    sha256: str
    phash: str


def sniff(data: bytes) -> str | None:
    """The file extension of a raster format recognised by its first bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((extension for magic, extension in _MAGIC if data.startswith(magic)), None)


def _not_raster(data: bytes) -> str:
    """Why bytes that no raster format claims are rejected."""
    if not data:
        return "not an image: empty body"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head:
        return "svg: not a raster image"
    if head.startswith(b"<"):
        return "not an image: the server sent HTML/XML"
    return f"not an image: unknown format starting {data[:8]!r}"


def validate_image(data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Image.Image | str:
    """The upright RGB image (first frame, in sRGB) that data holds, or the reason it is rejected."""
    decoded = _decode(data, max_pixels, min_side)
    return decoded if isinstance(decoded, str) else decoded[0]


def keep_image(data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Kept | str:
    """The JPEG gimg keeps for data (its own bytes when already a plain RGB JPEG), or the reason it is rejected.

    The image is decoded once, in full; a baseline or progressive RGB JPEG with no rotation and no foreign
    colour profile is kept byte for byte (no second lossy generation), anything else is re-encoded.
    """
    decoded = _decode(data, max_pixels, min_side)
    if isinstance(decoded, str):
        return decoded
    image, untouched = decoded
    jpeg = data if untouched else encode_jpeg(image)
    return Kept(jpeg, hashlib.sha256(jpeg).hexdigest(), perceptual_hash(image))


def _decode(data: bytes, max_pixels: int, min_side: int) -> tuple[Image.Image, bool] | str:
    kind = sniff(data)
    if kind is None:
        return _not_raster(data)
    try:
        # Only the sniffed format's decoder may read the bytes: no guessing among Pillow's other plugins.
        with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[kind]]) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                return f"decompression bomb: {width}x{height} is over {max_pixels} pixels"
            if min(width, height) < min_side:
                return f"too small: {width}x{height} (minimum {min_side}x{min_side})"
            opened.load()
            untouched = (
                kind == "jpg"
                and opened.mode == "RGB"
                and opened.getexif().get(_ORIENTATION, 1) == 1
                and _is_srgb(opened.info.get("icc_profile"))
            )
            if untouched:
                return opened, True
            return to_rgb(_to_srgb(ImageOps.exif_transpose(opened))), False
    except Image.DecompressionBombError as error:
        return f"decompression bomb: {error}"
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... on bad data
        return f"undecodable {kind}: {_first_line(error)}"


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy: transparency on white, 16-bit and float grey scaled to 8 bits, CMYK/palette converted."""
    if image.mode.startswith("I") or image.mode == "F":
        grey = image.convert("I") if image.mode != "F" else image
        if image.mode.startswith("I;16") or grey.getextrema()[1] > 255:
            grey = grey.point(lambda value: value / 256)
        return grey.convert("L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def encode_jpeg(image: Image.Image) -> bytes:
    """image as a JPEG of quality 95."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def perceptual_hash(image: Image.Image) -> str:
    """The 64-bit DCT hash of image, as 16 hex digits; near-identical pictures differ in a few bits."""
    # A box reduction first: phash's own Lanczos resize of a full-size photo costs ~15x more.
    factor = max(1, min(image.size) // 64)
    return str(imagehash.phash(image.reduce(factor) if factor > 1 else image))


def _is_srgb(profile: bytes | None) -> bool:
    return not profile or "srgb" in _description(profile).lower()


def _to_srgb(image: Image.Image) -> Image.Image:
    """image converted from its embedded ICC profile to sRGB (as is when it has none or it cannot be read)."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "CMYK", "L") or _is_srgb(profile):
        return image
    transform = _transform(profile, image.mode)
    return ImageCms.applyTransform(image, transform) if transform else image


@lru_cache(maxsize=64)
def _description(profile: bytes) -> str:
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except (ImageCms.PyCMSError, OSError, ValueError):  # a broken profile is treated as absent
        return "srgb (unreadable profile)"


@lru_cache(maxsize=64)
def _transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        # NOCACHE: one transform is shared by the download threads, and lcms's one-pixel cache is not thread-safe.
        return ImageCms.buildTransform(
            source, ImageCms.createProfile("sRGB"), mode, "RGB", flags=ImageCms.Flags.NOCACHE
        )
    except (ImageCms.PyCMSError, OSError, ValueError):  # a profile lcms cannot use: keep the plain conversion
        return None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
