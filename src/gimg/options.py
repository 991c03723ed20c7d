"""Every option of every stage, once: its default, its choices or range, its help. Imports nothing heavy.

Each stage takes one frozen dataclass (DownloadOptions, CropOptions, ClassifyOptions, AnalyzeOptions), and a
StudyConfig holds them all. The CLI builds its flags from these fields (`max_per_host` is `--max-per-host`), the
study file sets them by section, and `*.settings.json` records the fields that change a stage's output.
"""

from __future__ import annotations

import math
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import OptionError
from .registry import CLASSIFIERS, DETECTORS, ENGINES, EXECUTORS, check_choice

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
) -> Any:
    """A dataclass field with what the CLI, the study file and the checks need to know about it.

    kind is the value's type when the default is None; noun names the choice in errors ("face detector");
    affects_output says whether a changed value must redo the stage's work (workers and --gpu do not).
    """
    metadata = {
        "help": help,
        "kind": kind or type(default),
        "choices": choices,
        "noun": noun,
        "low": low,
        "high": high,
        "affects_output": affects_output,
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
    value = str(value)
    if meta["choices"] is not None:
        check_choice(meta["noun"] or item.name, value, meta["choices"])
    return value


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

    engine: str = option("bing", "Search engine to query; `urls` replays a CSV of term,url.",
                         choices=tuple(ENGINES), noun="engine")
    engine_url: str | None = option(None, "Base URL of the engine (for a mirror or a local test server), e.g. "
                                          "http://127.0.0.1:8000.", kind=str)
    urls: Path | None = option(None, "CSV with term,url[,rank] columns, for --engine urls.", kind=Path)
    market: str | None = option(None, "Market (region) to search in, as language-COUNTRY, e.g. en-US or de-DE. "
                                      "Default: the engine's own, which follows this machine's IP address.", kind=str)
    language: str | None = option(None, "Language of the engine's interface and results, e.g. en or de. Default: "
                                        "the market's.", kind=str)
    safe_search: str = option("moderate", "Safe search: off, moderate (the engines' default) or strict.",
                              choices=SAFE_SEARCH, noun="safe search setting")
    limit: int = option(500, "Number of top results to download per term.", low=1)
    max_per_host: int = option(4, "Most downloads in flight to any one host, to stay polite.", low=1)
    min_success: float = option(0.5, "Warn about a term when a smaller share of its results could be downloaded "
                                     "(flagged in download_summary.csv).", low=0, high=1)


@dataclass(frozen=True)
class CropOptions(Options):
    """How faces are found and cut out."""

    detector: str = option("blazeface", "Face detector: MediaPipe BlazeFace (fast), dlib HOG (the original's) or "
                                        "dlib's CNN (slow without a GPU).", choices=tuple(DETECTORS),
                           noun="face detector")
    upsample: int = option(1, "Times dlib's detectors upsample each image; 1 finds faces down to about 40 px.",
                           low=0, high=3)
    min_face: float | None = option(None, "Smallest face BlazeFace looks for, in pixels. Default: the larger of "
                                          "36 px and 1/12 of the image's short side. Smaller is slower and finds "
                                          "more small background faces.", kind=float, low=1)
    landmarks: bool = option(False, "Also write the 68-point landmarks of each face to <crop>.txt, as the "
                                    "original did.")


@dataclass(frozen=True)
class ClassifyOptions(Options):
    """Which gender model runs, and where."""

    model: str = option("onnx", "Gender model: the bundled ONNX net, or the Levi-Hassner Caffe net in "
                                "cnn_age_gender/.", choices=tuple(CLASSIFIERS), noun="gender model")
    gpu: bool = option(False, "Run the model on a CUDA GPU; exits 2 where there is none.", affects_output=False)


@dataclass(frozen=True)
class AnalyzeOptions(Options):
    """Which faces count, how shares are corrected and compared, and how intervals are drawn."""

    census: Path | None = option(None, "CSV of term and bls_share_women (a fraction) to compare with. Default: "
                                       "the BLS CPS 2022 table shipped with gimg.", kind=Path)
    cutoff: float = cutoff_option()
    evaluation: Path | None = option(None, "evaluation.json (from `gimg evaluate`) whose sensitivity and "
                                           "specificity correct the shares. Default: the evaluation shipped for "
                                           "the model named in Datasets/.", kind=Path)
    policy: str = option("biggest", "Faces counted per image: the biggest (the original), all, or only images "
                                    "with exactly one.", choices=POLICIES, noun="face policy")
    min_box: int = option(0, "Ignore faces whose detected box has a side under this many pixels.", low=0)
    min_faces: int = option(20, "Terms with fewer counted faces are flagged and left out of the census "
                                "comparison.", low=1)
    resamples: int = option(2000, "Bootstrap replicates for the 95% intervals.", low=100)
    seed: int = option(0, "Seed of the bootstrap.")


@dataclass(frozen=True)
class EvaluateOptions(Options):
    """Where the labelled images are, and the cutoff their errors are counted at."""

    images: Path | None = option(None, "Folder of the labelled images. Default: images/ next to LABELS.", kind=Path)
    cutoff: float = cutoff_option()


@dataclass(frozen=True)
class ExecutionOptions(Options):
    """How work is spread over processes, nodes and concurrent runs; never changes what is computed."""

    workers: int | None = option(None, "Worker processes (or concurrent terms for download; the CPUs of a Ray "
                                       "started here). Default: the number of CPUs.", kind=int, low=1,
                                 affects_output=False)
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
    stale_after: float = option(60.0, "Seconds without a heartbeat after which a worker's claimed terms are taken "
                                      "over (at once when its process is gone from this machine); keep it well above "
                                      "the shared folder's time resolution.", low=5, affects_output=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ray_address is not None and self.executor != "ray":
            raise OptionError("--ray-address needs --executor ray")


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
