"""The four stages in order: download, crop, classify, analyze."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .analyze import AnalysisResult, read_census, run_analyze
from .classify import check_gpu, run_classify
from .download import run_download
from .faces import run_crop
from .outcome import TermOutcome


@dataclass
class PipelineResult:
    """Every stage's per-term outcomes, and the analysis."""

    outcomes: dict[str, list[TermOutcome]] = field(default_factory=dict)
    analysis: AnalysisResult | None = None

    @property
    def failures(self) -> list[TermOutcome]:
        return [o for outcomes in self.outcomes.values() for o in outcomes if o.status == "failed"]


def run_pipeline(
    terms: list[str],
    out: Path,
    *,
    engine: str = "bing",
    engine_url: str | None = None,
    urls_csv: Path | None = None,
    limit: int = 500,
    detector: str = "hog",
    upsample: int = 1,
    model: str = "onnx",
    gpu: bool = False,
    census: Path = Path("professions.csv"),
    cutoff: float = 0.5,
    workers: int | None = None,
    on_stage: Callable[[str, list[TermOutcome]], object] = lambda stage, outcomes: None,
) -> PipelineResult:
    """Run the four stages; options that could only fail late (census, GPU) are checked first."""
    read_census(census)
    if gpu:
        check_gpu(model)
    result = PipelineResult()
    stages = {
        "download": lambda: run_download(terms, out, engine=engine, engine_url=engine_url, urls_csv=urls_csv,
                                         limit=limit, workers=workers),
        "crop": lambda: run_crop(out, detector=detector, upsample=upsample, workers=workers),
        "classify": lambda: run_classify(out, model=model, gpu=gpu, workers=workers),
    }
    for stage, run in stages.items():
        result.outcomes[stage] = run()
        on_stage(stage, result.outcomes[stage])
    result.analysis = run_analyze(out, census=census, cutoff=cutoff)
    return result
