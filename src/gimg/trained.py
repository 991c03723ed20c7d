"""A model trained by `gimg train`, loaded from its MODEL_DIR (model.onnx + manifest.json) as a gender backend."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .chipnet import ChipNet
from .errors import ModelError
from .facechips import ChipSpec
from .layout import ModelDir

MODEL_FORMAT = "gimg-model/1"


def model_name(model: bytes) -> str:
    """A trained model's name: `trained:` and the start of its ONNX file's sha256, so a name pins the weights."""
    return f"trained:{hashlib.sha256(model).hexdigest()[:12]}"


def read_manifest(model_dir: str | Path) -> dict:
    """A MODEL_DIR's manifest, checked; ModelError saying what is wrong otherwise."""
    path = ModelDir(model_dir).manifest
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise ModelError(f"{model_dir} is not a trained model folder (no {path.name}): run `gimg train`") from None
    except ValueError as error:
        raise ModelError(f"{path} is not valid JSON ({error}): train the model again") from None
    if manifest.get("format") != MODEL_FORMAT:
        raise ModelError(f"{path} has format {manifest.get('format')!r}, not {MODEL_FORMAT}: train the model again")
    return manifest


def trained_version(model_dir: str | Path) -> int:
    """Changes whenever the folder's model is replaced (the manifest is written last by every training)."""
    try:
        return ModelDir(model_dir).manifest.stat().st_mtime_ns
    except OSError:
        raise ModelError(f"{model_dir} is not a trained model folder (no manifest.json): run `gimg train`") from None


def chip_spec(manifest: dict) -> ChipSpec:
    """The chip framing a trained model expects, from its manifest."""
    return ChipSpec(**manifest["preprocessing"]["chip"])


def describe(model_dir: str | Path) -> str:
    """What a trained model is, from its manifest: its base, its training data and options, its framing."""
    manifest = read_manifest(model_dir)
    training = manifest["training"]
    return (f"{manifest['name']} ({Path(model_dir).resolve()}): {manifest['base']}, fine-tuned by gimg "
            f"{manifest['versions']['gimg']} on {training['train']} faces of {Path(training['labels']).name} "
            f"(data sha256 {training['data_sha256'][:16]}), seed {training['options']['seed']}; "
            f"{chip_spec(manifest).describe()}; onnxruntime {manifest['versions']['onnxruntime']}")


class TrainedGender(ChipNet):
    """A `gimg train` model, loaded from its MODEL_DIR with the chip framing and inputs its manifest records."""

    def __init__(self, model_dir: str | Path, *, gpu: bool = False) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = read_manifest(self.model_dir)
        preprocessing = self.manifest["preprocessing"]
        model = ModelDir(self.model_dir).model_onnx
        try:
            weights = model.read_bytes()
        except OSError as error:
            raise ModelError(f"cannot read {model} ({error.strerror}): train the model again") from None
        if model_name(weights) != self.manifest["name"]:
            raise ModelError(f"{model} is not the model {self.manifest['name']} of its manifest: train it again")
        super().__init__(
            weights, chip_spec(self.manifest), str(self.manifest["name"]),
            means=preprocessing["means"], scale=float(preprocessing["scale"]),
            input_name=self.manifest["input"]["name"], output_name=self.manifest["output"]["name"], gpu=gpu,
        )
