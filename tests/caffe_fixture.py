"""Write caffe files for tests: a caffemodel with random weights for the real deploy prototxt, and a mean."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# The learnable layers of cnn_age_gender/gender_deploy.prototxt: name -> (weight shape, bias size).
GENDER_NET_SHAPES = {
    "conv1": ((96, 3, 7, 7), 96),
    "conv2": ((256, 96, 5, 5), 256),
    "conv3": ((384, 256, 3, 3), 384),
    "fc6": ((512, 384 * 7 * 7), 512),
    "fc7": ((512, 512), 512),
    "fc8": ((2, 512), 2),
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode())


def blob(array: np.ndarray, *, legacy_dims: bool = False) -> bytes:
    """A caffe BlobProto: data (5, packed float) with shape (7, BlobShape dim=1 packed int64), or
    the legacy num/channels/height/width fields (1-4) that old files such as mean.binaryproto use."""
    values = np.ascontiguousarray(array, dtype="<f4")
    if legacy_dims:
        dims = (1,) * (4 - values.ndim) + values.shape
        header = b"".join(_varint(number << 3) + _varint(dim) for number, dim in zip((1, 2, 3, 4), dims, strict=True))
    else:
        header = _field(7, _field(1, b"".join(_varint(dim) for dim in values.shape)))
    return header + _field(5, values.tobytes())


def write_caffemodel(path: Path, *, seed: int = 0, v1_layers: bool = False) -> Path:
    """Serialize a NetParameter with random weights for the gender deploy net.

    Modern files list `layer` (field 100: LayerParameter name=1, type=2, blobs=7); files of 2015, like
    Levi and Hassner's own, list V1 `layers` (field 2: V1LayerParameter name=4, blobs=6) with 4-D dims.
    """
    rng = np.random.default_rng(seed)
    layers = []
    for name, (shape, bias) in GENDER_NET_SHAPES.items():
        fan_in = int(np.prod(shape[1:]))
        # He-scaled, and conv1 scaled down further for mean-subtracted pixels of about +-100, so that the
        # softmax is not saturated and its two outputs stay visibly between 0 and 1.
        scale = np.sqrt(2.0 / fan_in) / (100.0 if name == "conv1" else 1.0)
        weights = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        biases = np.zeros(bias, dtype=np.float32)
        if v1_layers:
            blobs = _field(6, blob(weights, legacy_dims=True)) + _field(6, blob(biases, legacy_dims=True))
            layers.append(_field(2, _string(4, name) + blobs))
        else:
            kind = "Convolution" if name.startswith("conv") else "InnerProduct"
            blobs = _field(7, blob(weights)) + _field(7, blob(biases))
            layers.append(_field(100, _string(1, name) + _string(2, kind) + blobs))
    path.write_bytes(_string(1, "LeviHassnerGender") + b"".join(layers))
    return path


def write_mean(path: Path, mean: np.ndarray) -> Path:
    """Write a mean image (channels, height, width) as a legacy 1xCxHxW BlobProto, like mean.binaryproto."""
    path.write_bytes(blob(mean[np.newaxis], legacy_dims=True))
    return path


def unpacked_floats(array: np.ndarray) -> bytes:
    """A BlobProto whose data is one fixed32 field per float (wire type 5), as some writers emit it."""
    values = np.asarray(array, dtype="<f4")
    shape = _field(7, b"".join(_varint(1 << 3) + _varint(dim) for dim in values.shape))
    return shape + b"".join(_varint(5 << 3 | 5) + struct.pack("<f", value) for value in values.ravel())
