"""Name -> implementation registries, kept as import paths so that listing the names imports nothing heavy.

Like fsspec's known_implementations: the keys are the choices the CLI offers, the values are resolved on use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import OptionError

# Each engine's builder: (DownloadOptions, *, page_delay, context, recorder) -> Engine.
ENGINES = {
    "google": "gimg.engines.google_basic:google_engine",
    "google-basic": "gimg.engines.google_basic:GoogleBasicEngine.from_options",
    "bing": "gimg.engines.bing:BingEngine.from_options",
    "duckduckgo": "gimg.engines.duckduckgo:DuckDuckGoEngine.from_options",
    "urls": "gimg.engines.urls:UrlsEngine.from_options",
}
DETECTORS = {
    "blazeface": "gimg.faces:detect_blazeface",
    "yunet": "gimg.faces:detect_yunet",
    "hog": "gimg.faces:detect_hog",
    "cnn": "gimg.faces:detect_cnn",
}
CLASSIFIERS = {
    "onnx": "gimg.classify:OnnxGender",
    "caffe": "gimg.classify:CaffeGender",
}
CORRECTIONS = {  # by Evaluation.kind: how the error rates of an evaluation are drawn and applied
    "counts": "gimg.correction:RateCorrection",
    "study": "gimg.studyrates:StudyCorrection",
}
# Each heat-map method: (classifier, RGB crop, face box in crop, OcclusionOptions) -> Explanation.
HEAT_MAPS = {
    "occlusion": "gimg.explain:occlusion_heat",
    "gradient": "gimg.explain:gradient_heat",
}
# Each executor's builder: (ExecutionOptions) -> Executor; Ray is imported only when the ray executor starts.
EXECUTORS = {
    "local": "gimg.executors:LocalExecutor.from_options",
    "ray": "gimg.executors:RayExecutor.from_options",
}
KINDS = {"engine": ENGINES, "face detector": DETECTORS, "gender model": CLASSIFIERS, "correction": CORRECTIONS,
         "heat map method": HEAT_MAPS, "executor": EXECUTORS}


def check_choice(kind: str, name: str, choices) -> None:
    """Raise OptionError naming the valid choices when name is not one of them."""
    if name not in choices:
        raise OptionError(f"unknown {kind} '{name}': choose one of {', '.join(choices)}")


def resolve(kind: str, name: str) -> Any:
    """The implementation registered under name for kind ("engine", "face detector", "gender model", "executor")."""
    registry = KINDS[kind]
    check_choice(kind, name, registry)
    module, _, path = registry[name].partition(":")
    found = import_module(module)
    for attribute in path.split("."):
        found = getattr(found, attribute)
    return found
