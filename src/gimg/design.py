"""Study designs: the waves and branches (engine x market) of a study, its index OUT/study.json, and which branches
a run covers, each branch a complete output tree of its own.

A study whose only branch has one engine, at most one market and no wave named lives at OUT itself (folder "."),
as every study did before designs; every other branch lives at OUT/<wave>/<engine>[_<market>]/. The index is read
and written here only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from .engines import Engine, make_engine
from .engines.urls import URLS, UrlsEngine, replayed_sources
from .errors import GimgError
from .layout import RESERVED_NAMES, Layout, write_json
from .options import DownloadOptions, values_of

STUDY_FORMAT = "gimg-study/1"
ROOT = "."


@dataclass(frozen=True)
class Wave:
    """A round of searches, and when it started (ISO UTC)."""

    name: str
    started: str


@dataclass(frozen=True)
class Branch:
    """One engine in one market in one wave, and the folder (relative to OUT) of its output tree."""

    wave: str
    engine: str
    market: str | None
    folder: str

    def path(self, out: Path) -> Path:
        """The branch's output tree below out."""
        return Path(out) if self.folder == ROOT else Path(out) / self.folder

    @property
    def name(self) -> str:
        """engine[_market]: the branch's folder within its wave."""
        return f"{self.engine}_{self.market}" if self.market else self.engine

    @property
    def label(self) -> str:
        """How logs and reports name the branch: wave/engine[_market]."""
        return f"{self.wave}/{self.name}"

    def download_options(self, options: DownloadOptions) -> DownloadOptions:
        """The run's download options narrowed to this branch's one engine and market (a replay stays urls)."""
        return replace(options, engine=URLS if options.engine == URLS else self.engine, market=self.market)

    def to_json(self) -> dict:
        return {"wave": self.wave, "engine": self.engine, "market": self.market, "folder": self.folder}


@dataclass(frozen=True)
class StudyDesign:
    """Every wave and branch of a study, in the order they were first run."""

    waves: tuple[Wave, ...] = ()
    branches: tuple[Branch, ...] = ()

    def find(self, wave: str, source: tuple[str, str | None]) -> Branch | None:
        """The branch of that wave and source (engine, market), if the study has one."""
        return next((b for b in self.branches if (b.wave, (b.engine, b.market)) == (wave, source)), None)

    def to_json(self) -> dict:
        return {"format": STUDY_FORMAT, "waves": [{"name": w.name, "started": w.started} for w in self.waves],
                "branches": [branch.to_json() for branch in self.branches]}


def read_design(out: Path) -> StudyDesign | None:
    """The study index of out, None when out has none (a tree made before designs, or nothing yet)."""
    path = Layout(out).study_index
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STUDY_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        waves = tuple(Wave(str(w["name"]), str(w["started"])) for w in data["waves"])
        branches = tuple(Branch(str(b["wave"]), str(b["engine"]), b["market"], str(b["folder"]))
                         for b in data["branches"])
    except (ValueError, KeyError, TypeError) as error:
        raise GimgError(f"{path} is damaged ({error}): restore it, or delete it to treat {out} as one branch") from None
    return StudyDesign(waves, branches)


def write_design(out: Path, design: StudyDesign) -> None:
    """Write OUT/study.json atomically."""
    write_json(Layout(out).study_index, design.to_json())


WHOLE = Branch("", "", None, ROOT)
"""The one branch of a tree without an index (or of a study coded by people): out itself."""


def study_branches(out: Path) -> list[Branch]:
    """Every branch of the study at out; a tree without an index is one branch at out itself."""
    design = read_design(out)
    if design is None or not design.branches:
        return [WHOLE]
    return list(design.branches)


def run_sources(options: DownloadOptions) -> list[tuple[str, str | None]]:
    """The (engine, market) pairs a run searches: engines x markets, or the lists of a replayed urls CSV."""
    engines, markets = values_of(options.engine), values_of(options.market) or [None]
    if URLS in engines:
        if len(engines) > 1:
            raise GimgError("--engine urls replays a file and cannot run with other engines: run them separately")
        if options.urls is None:
            raise GimgError("--engine urls needs --urls CSV: a file with columns term,url (optional rank)")
        sources = replayed_sources(options.urls)
        if options.market is not None and any(market for _, market in sources):
            sources = [source for source in sources if source[1] in markets]
        return sources
    return [(engine, market) for engine in engines for market in markets]


@dataclass(frozen=True)
class RunPlan:
    """What a run does: the study's design with this run's wave and branches added, and those branches."""

    design: StudyDesign
    wave: str
    branches: tuple[Branch, ...]


def plan_run(out: Path, options: DownloadOptions, started: str) -> RunPlan:
    """The branches a download run covers: its engines x markets in its wave (options.wave, else the study's first
    wave, else a new one named by the date `started`); branches the study has keep their folder."""
    design = read_design(out) or StudyDesign()
    wave = options.wave or (design.waves[0].name if design.waves else started[:10])
    if wave.casefold() in RESERVED_NAMES:
        raise GimgError(f"wave {wave!r} would be a folder of the output tree itself: choose another --wave name")
    sources = run_sources(options)
    root = not design.branches and len(sources) == 1 and options.wave is None
    waves = design.waves if any(w.name == wave for w in design.waves) else (*design.waves, Wave(wave, started))
    branches, chosen = list(design.branches), []
    for source in sources:
        branch = design.find(wave, source)
        if branch is None:
            branch = Branch(wave, *source, ROOT)
            if not root:
                branch = replace(branch, folder=f"{wave}/{branch.name}")
            branches.append(branch)
        chosen.append(branch)
    return RunPlan(StudyDesign(tuple(waves), tuple(branches)), wave, tuple(chosen))


def branch_engine(options: DownloadOptions, branch: Branch) -> Engine:
    """The engine that answers a branch's searches: the branch's engine in its market, or its list of a replay."""
    if options.engine == URLS:
        return UrlsEngine(options.urls, (branch.engine, branch.market))
    return make_engine(branch.download_options(options))
