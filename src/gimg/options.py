"""Every option of every stage, once: its default, its choices or range, its help. Imports nothing heavy.

Each stage takes one frozen dataclass (DownloadOptions, CropOptions, ClassifyOptions, AnalyzeOptions), and a
StudyConfig holds them all. The CLI builds its flags from these fields (`max_per_host` is `--max-per-host`), the
study file sets them by section, and `*.settings.json` records the fields that change a stage's output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .claims import DEFAULT_STALE_AFTER
from .errors import OptionError
from .layout import check_rater, is_model_dir
from .registry import CLASSIFIERS, DETECTORS, ENGINES, EXECUTORS, HEAT_MAPS, check_choice

POLICIES = ("biggest", "all", "single")
BUSY_MODES = ("wait", "skip")
SAFE_SEARCH = ("off", "moderate", "strict")


def option(
    default: Any,
    help: str,
    *,
    kind: type | None = None,
    choices: tuple[str, ...] | None = None,
    noun: str = "",
    low: float | None = None,
    high: float | None = None,
    affects_output: bool = True,
    multiple: bool = False,
    normalise: Callable[[str], str] | None = None,
) -> Any:
    """A dataclass field with what the CLI, the study file and the checks need to know about it.

    kind is the value's type when the default is None; noun names the choice in errors ("face detector");
    affects_output says whether a changed value must redo the stage's work (workers and --gpu do not).
    multiple: the option takes one or more values (a comma-separated string, or a list in a study file), each
    checked, kept once, and joined as "a,b". normalise checks and rewrites one text value (OptionError if bad).
    """
    metadata = {
        "help": help,
        "kind": kind or type(default),
        "choices": choices,
        "noun": noun,
        "low": low,
        "high": high,
        "affects_output": affects_output,
        "multiple": multiple,
        "normalise": normalise,
    }
    return field(default=default, metadata=metadata)


def flag(item: Field) -> str:
    """The command-line flag of a field: `max_per_host` is `--max-per-host`."""
    return "--" + item.name.replace("_", "-")


def _check(item: Field, value: Any) -> Any:
    """The value, converted to the field's kind where that is lossless; OptionError when it is out of bounds."""
    meta = item.metadata
    if value is None:
        if item.default is not None:
            raise OptionError(f"{flag(item)} needs a value")
        return None
    kind = meta["kind"]
    if kind is Path:
        return Path(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{flag(item)} must be true or false, not {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"{flag(item)} must be a number, not {value!r}")
        if kind is int and value != int(value):
            raise OptionError(f"{flag(item)} must be a whole number, not {value!r}")
        value = kind(value)
        if math.isnan(value):
            raise OptionError(f"{flag(item)} must be a number, not NaN")
        low, high = meta["low"], meta["high"]
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low:g}" if high is None else f"between {low:g} and {high:g}"
            raise OptionError(f"{flag(item)} must be {bounds} (got {value:g})")
        return value
    if meta["multiple"]:
        given = value if isinstance(value, (list, tuple)) else str(value).split(",")
        checked = [_check_text(item, str(part).strip()) for part in given if str(part).strip()]
        if not checked:
            raise OptionError(f"{flag(item)} needs a value")
        return ",".join(dict.fromkeys(checked))
    return _check_text(item, str(value))


def _check_text(item: Field, value: str) -> str:
    """One text value, checked against the field's choices and normalised."""
    meta = item.metadata
    if meta["choices"] is not None:
        check_choice(meta["noun"] or item.name, value, meta["choices"])
    if meta["normalise"] is None:
        return value
    try:
        return meta["normalise"](value)
    except OptionError as error:
        raise OptionError(f"{flag(item)}: {error}") from None


def values_of(text: str | None) -> list[str]:
    """The values of an option that takes several ("bing,duckduckgo" -> ["bing", "duckduckgo"]); [] for None."""
    return [part for part in (text or "").split(",") if part]


_MARKET = re.compile(r"([a-z]{2,3})-([a-z]{2})", re.IGNORECASE)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def market_code(text: str) -> str:
    """A market as language-COUNTRY (en-us -> en-US); OptionError when it is not one."""
    match = _MARKET.fullmatch(text.strip())
    if not match:
        raise OptionError(f"market {text!r} is not language-COUNTRY: write e.g. en-US, de-DE or en-GB")
    return f"{match[1].lower()}-{match[2].upper()}"


def safe_name(text: str) -> str:
    """A name that can be a folder everywhere (a wave's): letters, digits, '-', '_', '.'; OptionError if not."""
    if not _SAFE_NAME.fullmatch(text) or text.endswith("."):
        raise OptionError(f"{text!r} is not a safe name: use up to 64 letters, digits, '-', '_' or '.', "
                          "starting with a letter or digit (e.g. 2026-11 or wave2)")
    return text


class Options:
    """Checks and normalises every field when an options object is made, from the CLI, a study file or code."""

    def __post_init__(self) -> None:
        for item in fields(self):
            object.__setattr__(self, item.name, _check(item, getattr(self, item.name)))

    def settings(self) -> dict[str, Any]:
        """The fields that change the stage's output, JSON-ready: what `*.settings.json` records."""
        return {
            item.name: str(value) if isinstance(value, Path) else value
            for item in fields(self)
            if item.metadata["affects_output"]
            for value in [getattr(self, item.name)]
        }


def cutoff_option() -> Any:
    """The p_female threshold, shared by analyze and evaluate."""
    return option(0.5, "A face counts as a woman when p_female is at least this.", low=0, high=1)


@dataclass(frozen=True)
class DownloadOptions(Options):
    """Where results come from and how politely they are fetched."""

    engine: str = option("bing", "Search engine(s) to query, comma-separated (bing,duckduckgo runs each); `urls` "
                                 "replays a CSV of term,url (such as `gimg search` writes).",
                         choices=tuple(ENGINES), noun="engine", multiple=True)
    engine_url: str | None = option(None, "Base URL of the engine (for a mirror or a local test server), e.g. "
                                          "http://127.0.0.1:8000.", kind=str)
    urls: Path | None = option(None, "CSV with term,url[,rank] columns, for --engine urls.", kind=Path)
    market: str | None = option(None, "Market(s) (region) to search in, as language-COUNTRY, comma-separated, e.g. "
                                      "en-US or en-US,en-GB (each engine runs in each market). Default: the "
                                      "engine's own, which follows this machine's IP address.", kind=str,
                                multiple=True, normalise=market_code)
    language: str | None = option(None, "Language of the engine's interface and results, e.g. en or de. Default: "
                                        "the market's.", kind=str)
    safe_search: str = option("moderate", "Safe search: off, moderate (the engines' default) or strict.",
                              choices=SAFE_SEARCH, noun="safe search setting")
    limit: int = option(500, "Number of top results to download per term.", low=1)
    max_per_host: int = option(4, "Most downloads in flight to any one host, to stay polite.", low=1)
    min_success: float = option(0.5, "Warn about a term when a smaller share of its results could be downloaded "
                                     "(flagged in download_summary.csv).", low=0, high=1)
    wave: str | None = option(None, "Wave (a round of searches, e.g. 2026-11 or wave2) to start or resume; earlier "
                                    "waves are kept. Default: the study's first wave, named by the date it started.",
                              kind=str, normalise=safe_name)
    retry_failed: bool = option(False, "In terms that have a manifest, fetch again only the results whose status "
                                       "is failed, and rewrite the manifest.", affects_output=False)


@dataclass(frozen=True)
class CropOptions(Options):
    """How faces are found and cut out."""

    detector: str = option("yunet", "Face detector: YuNet (fast, and keeps small faces), MediaPipe BlazeFace "
                                    "(faster, but only looks for faces larger than 1/12 of the image), dlib HOG (the "
                                    "original's) or dlib's CNN (slow without a GPU).", choices=tuple(DETECTORS),
                           noun="face detector")
    upsample: int = option(1, "Times dlib's detectors upsample each image; 1 finds faces down to about 40 px.",
                           low=0, high=3)
    min_face: float | None = option(None, "Smallest face YuNet or BlazeFace looks for, in pixels. Default: YuNet "
                                          "36 px; BlazeFace the larger of 36 px and 1/12 of the image's short side. "
                                          "Smaller is slower and finds more small background faces.", kind=float,
                                    low=1)
    landmarks: bool = option(False, "Also write the 68-point landmarks of each face to <crop>.txt, as the "
                                    "original did.")


def gender_model(name: str) -> str:
    """A registered gender model's name as is, a `gimg train` folder as an absolute path; OptionError otherwise."""
    if name in CLASSIFIERS:
        return name
    if is_model_dir(name):
        return str(Path(name).resolve())
    raise OptionError(f"unknown gender model '{name}': choose one of {', '.join(CLASSIFIERS)}, or a folder made by "
                      "`gimg train` (with its manifest.json)")


@dataclass(frozen=True)
class ClassifyOptions(Options):
    """Which gender model runs, and where."""

    model: str = option("onnx", "Gender model: onnx (the bundled net), caffe (the Levi-Hassner net in "
                                "cnn_age_gender/), or a MODEL_DIR made by `gimg train`.", kind=str)
    gpu: bool = option(False, "Run the model on a CUDA GPU; exits 2 where there is none.", affects_output=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "model", gender_model(self.model))


@dataclass(frozen=True)
class AnalyzeOptions(Options):
    """Which faces count, how shares are corrected and compared, and how intervals are drawn."""

    census: Path | None = option(None, "CSV of term and bls_share_women (a fraction) to compare with. Default: "
                                       "the BLS CPS 2022 table shipped with gimg.", kind=Path)
    cutoff: float = cutoff_option()
    evaluation: Path | None = option(None, "evaluation.json (from `gimg evaluate`) whose sensitivity and "
                                           "specificity correct the shares. Default: validation/evaluation.json "
                                           "when the study's own faces were labelled (`gimg label`), else the "
                                           "evaluation shipped for the model named in Datasets/.", kind=Path)
    policy: str = option("biggest", "Faces counted per image: the biggest (the original), all, or only images "
                                    "with exactly one.", choices=POLICIES, noun="face policy")
    min_box: int = option(0, "Ignore faces whose detected box has a side under this many pixels.", low=0)
    min_faces: int = option(20, "Terms with fewer counted faces are flagged and left out of the census "
                                "comparison.", low=1)
    resamples: int = option(2000, "Bootstrap replicates for the 95% intervals.", low=100)
    seed: int = option(0, "Seed of the bootstrap.")
    codes: Path | None = option(None, "CSV of term, rank, gender (woman/man)[, url]: analyze a study coded by "
                                      "people instead of the classified faces under --out (no classifier "
                                      "correction).", kind=Path)


COUNTING = ("policy", "cutoff", "min_box")  # the AnalyzeOptions that decide which faces count, and as what


def counting(options: AnalyzeOptions) -> dict[str, Any]:
    """The options that decide which faces an analysis counts and which it calls women: a label sample's must match."""
    return {name: getattr(options, name) for name in COUNTING}


@dataclass(frozen=True)
class EvaluateOptions(Options):
    """Where the labelled images are, and the cutoff their errors are counted at."""

    images: Path | None = option(None, "Folder of the labelled images. Default: images/ next to LABELS.", kind=Path)
    cutoff: float = cutoff_option()
    heatmaps: int = option(12, "With one --model: misclassified faces drawn with occlusion heat maps in "
                               "misclassified_heatmaps.png, most confident first (about half a second of CPU "
                               "each); 0: none.", low=0)


@dataclass(frozen=True)
class ExecutionOptions(Options):
    """How work is spread over processes, nodes and concurrent runs; never changes what is computed."""

    workers: int | None = option(None, "Worker processes (for download: validation processes, and terms searched "
                                       "at once; the CPUs of a Ray started here). Default: the number of CPUs.",
                                 kind=int, low=1, affects_output=False)
    executor: str = option("local", "Where crop and classify run: local (this machine's processes) or ray (a Ray "
                                    "cluster; pip install 'gimg[ray]'). Downloads always run in this process.",
                           choices=tuple(EXECUTORS), noun="executor", affects_output=False)
    ray_address: str | None = option(None, "Ray cluster to join with --executor ray: the HOST:PORT that `ray start "
                                           "--head` printed, or auto (the cluster of this node). Default: a Ray "
                                           "started on this machine for the run, with --workers CPUs.", kind=str,
                                     affects_output=False)
    busy: str = option("wait", "A term another gimg process (on any node) is working on in the same --out: wait "
                               "for it, or skip it (rerun later to pick it up).", choices=BUSY_MODES,
                       noun="busy mode", affects_output=False)
    stale_after: float = option(DEFAULT_STALE_AFTER, "Seconds without a heartbeat after which a worker's claimed "
                                                     "terms are taken over (at once when its process is gone from "
                                                     "this machine); keep it well above the shared folder's time "
                                                     "resolution.", low=5, affects_output=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ray_address is not None and self.executor != "ray":
            raise OptionError("--ray-address needs --executor ray")


# The bundled net's chip is rendered at this many times its 32 px side and shrunk (bench/framing.py measured it).
DEFAULT_SUPERSAMPLE = 4


@dataclass(frozen=True)
class TrainOptions(Options):
    """How `gimg train` fine-tunes the bundled net: the split, the schedule, weights, augmentation, calibration."""

    images: Path | None = option(None, "Folder of the labelled images (default: images/ beside LABELS), or the "
                                       "study folder of a validation sample (default: the folder above its "
                                       "validation/).", kind=Path, affects_output=False)
    seed: int = option(0, "Seed of the split, the shuffles and the augmentation: one seed, one model.")
    validation_share: float = option(0.2, "Share of the faces held out for early stopping, calibration and the "
                                          "model's evaluation.json.", low=0.05, high=0.5)
    epochs: int = option(30, "Most passes over the training faces.", low=1)
    patience: int = option(5, "Stop after this many epochs without a lower validation loss.", low=1)
    batch_size: int = option(64, "Faces per training step.", low=2)
    learning_rate: float = option(3e-4, "Step size of the Adam optimiser.", low=1e-7, high=1)
    anchor: float = option(1e-3, "Pull of each weight towards its pretrained value, against overfitting few faces.",
                           low=0)
    augment: bool = option(True, "Train on random flips, rotations, scale and crop jitter, colour jitter, blur and "
                                 "erasing of each face.")
    balance: str | None = option(None, "Give every group of this labels column (e.g. race) equal weight within "
                                       "each gender.", kind=str)
    calibrate: bool = option(True, "Fit Platt scaling on the validation split, folded into the model.")
    supersample: int = option(DEFAULT_SUPERSAMPLE, "Render each 32 px chip at this many times its side and shrink "
                                                   "it, as the bundled net's framing does.", low=1, high=8)
    cutoff: float = cutoff_option()


@dataclass(frozen=True)
class ExplainOptions(Options):
    """How `gimg explain` draws what a model looks at."""

    method: str = option("occlusion", "Heat map: occlusion sensitivity (any model), or gradients (onnx and `gimg "
                                      "train` models; needs gimg[train]).", choices=tuple(HEAT_MAPS),
                         noun="heat map method")


SECTIONS: dict[str, type[Options]] = {
    "download": DownloadOptions,
    "crop": CropOptions,
    "classify": ClassifyOptions,
    "analyze": AnalyzeOptions,
    "execution": ExecutionOptions,
}


@dataclass(frozen=True)
class StudyConfig:
    """A whole study's options, one object per stage, as a study file lays them out in sections."""

    download: DownloadOptions = field(default_factory=DownloadOptions)
    crop: CropOptions = field(default_factory=CropOptions)
    classify: ClassifyOptions = field(default_factory=ClassifyOptions)
    analyze: AnalyzeOptions = field(default_factory=AnalyzeOptions)
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> StudyConfig:
        """A config from flat option names (as the CLI passes them); names of no section are ignored."""
        return cls(**{name: section(**pick(section, values)) for name, section in SECTIONS.items()})

    def sections(self) -> dict[str, dict[str, Any]]:
        """Every option by section, as plain values."""
        return {name: asdict(getattr(self, name)) for name in SECTIONS}


def pick(section: type[Options], values: dict[str, Any]) -> dict[str, Any]:
    """The entries of values that are fields of section."""
    names = {item.name for item in fields(section)}
    return {name: value for name, value in values.items() if name in names}


@dataclass(frozen=True)
class SampleOptions(Options):
    """How many of the study's counted faces `gimg label sample` draws for people to label, and in which order."""

    n: int = option(300, "Faces in the sample, spread over terms and both predicted classes; a larger n later adds "
                         "faces after the ones drawn, never reshuffles them.", low=1)
    seed: int = option(0, "Seed of the sample's random order; a sample keeps the seed it was first drawn with.")


@dataclass(frozen=True)
class ServeOptions(Options):
    """Where `gimg label serve` listens, and who labels."""

    port: int = option(0, "Port of the labelling page on 127.0.0.1; 0 picks a free one.", low=0, high=65535)
    rater: str | None = option(None, "Your name as a rater (up to 64 letters, digits, _ or -); your answers go to "
                                     "validation/labels/RATER.csv. Default: the page asks.", kind=str)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rater is not None:
            check_rater(self.rater)
