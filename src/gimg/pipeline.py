"""The four stages in order: download, crop, classify, analyze."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .analyze import AnalysisResult, read_census, run_analyze
from .classify import check_gpu, run_crop_classify
from .correction import load_evaluation
from .download import run_download
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
    per_host: int | None = None,
    detector: str = "blazeface",
    upsample: int = 1,
    min_face: float | None = None,
    landmarks: bool = False,
    model: str = "onnx",
    gpu: bool = False,
    census: Path = Path("professions.csv"),
    cutoff: float = 0.5,
    evaluation: Path | None = None,
    policy: str = "biggest",
    min_box: int = 0,
    min_faces: int = 20,
    resamples: int = 2000,
    seed: int = 0,
    workers: int | None = None,
    on_stage: Callable[[str, list[TermOutcome]], object] = lambda stage, outcomes: None,
) -> PipelineResult:
    """Run the four stages; options that could only fail late (census, evaluation, GPU) are checked first.

    Crop and classify run as one pass over the images (run_crop_classify), with both stages' outputs.
    """
    read_census(census)
    if evaluation is not None:
        load_evaluation(evaluation)
    if gpu:
        check_gpu(model)
    result = PipelineResult()
    result.outcomes["download"] = run_download(terms, out, engine=engine, engine_url=engine_url, urls_csv=urls_csv,
                                               limit=limit, per_host=per_host, workers=workers)
    on_stage("download", result.outcomes["download"])
    result.outcomes["crop"], result.outcomes["classify"] = run_crop_classify(
        out, detector=detector, upsample=upsample, min_face=min_face, landmarks=landmarks, model=model, gpu=gpu,
        workers=workers,
    )
    on_stage("crop", result.outcomes["crop"])
    on_stage("classify", result.outcomes["classify"])
    result.analysis = run_analyze(out, census=census, cutoff=cutoff, evaluation=evaluation, face_policy=policy,
                                  min_face=min_box, min_faces=min_faces, resamples=resamples, seed=seed)
    return result
