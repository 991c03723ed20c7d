"""Every path of gimg's output tree in one place, the safe folder name of a term, and atomic writes."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from .claims import DEFAULT_STALE_AFTER, claim
from .errors import GimgError, MissingInputError

DOWNLOADED = "Downloaded_images"
CROPPED = "Cropped_faces"
DATASETS = "Datasets"
ANALYSIS = "analysis"
TERMS_INDEX = "terms.csv"
MANIFEST = "manifest.csv"
FACES = "faces.csv"
QUARANTINE = "_quarantine"
JOURNAL = "_journal.csv"  # one row per finished result, appended as they finish: the resume point after a kill
SEARCH = "_search.json"  # the engine's result list, so a resumed term fetches the same results
NEAR_DUPLICATES = "near_duplicates.csv"
DOWNLOAD_SUMMARY = "download_summary.csv"
RUNS = "runs"
EVALUATION_JSON = "evaluation.json"
VALIDATION = "validation"
LABELS = "labels"
STUDY_INDEX = "study.json"  # the study's waves and branches (gimg.design), at the top of --out
CONTEXT = "context"  # one context record per download run of a branch: <run id>.json
SEARCHES = "searches"  # what `gimg search` writes: <run id>.csv and each branch's context record
COMPARISON = "comparison"  # the study-level comparison of its branches
DEMO_SITE = "demo_site"
# Names a wave's folder must not take, as they are already parts of a tree at the top of --out.
RESERVED_NAMES = frozenset(name.casefold() for name in (
    "Downloaded_images", "Cropped_faces", "Datasets", "analysis", VALIDATION, RUNS, CONTEXT, SEARCHES, COMPARISON,
    DEMO_SITE,
))
CLAIMS = ".claims"  # OUT/.claims/<stage>/<term folder>.claim: the terms that some worker, on any node, is doing
WHOLE_STAGE = "_all"  # the claim of a whole stage (analyze, the terms index); no term's folder starts with "_"
# Claim keys (the <stage> folders). Crop, classify and the fused pass share FACES_CLAIM: a crop rerun removes the
# crops that classify reads. The others are whole-folder files, each read, merged or rewritten under its claim.
DOWNLOAD_CLAIM = "download"
FACES_CLAIM = "faces"
ANALYZE_CLAIM = "analyze"
TERMS_INDEX_CLAIM = "terms-index"
DOWNLOAD_SUMMARY_CLAIM = "download-summary"
STUDY_INDEX_CLAIM = "study-index"

_MAX_FOLDER_BYTES = 80
_UNSAFE = re.compile(r"[^\w\-. ]+")
_HASH_SUFFIX = re.compile(r"-[0-9a-f]{8}$")
_WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com\d|lpt\d)(\..*)?", re.IGNORECASE)
_RATER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def folder_name(term: str) -> str:
    """A safe, unique, readable folder name for a search term.

    Unsafe characters become "_", dots and spaces are trimmed from the ends, and the name is cut to
    80 UTF-8 bytes. A term is its own folder name only when it is already safe, lower case (names must
    stay distinct on case-insensitive file systems), not a Windows device name, and does not end like a
    hashed name; any other term gets a short hash of the original appended, which keeps names unique.
    """
    normal = unicodedata.normalize("NFKC", term)
    safe = _UNSAFE.sub("_", normal).strip(" .")
    safe = safe.encode("utf-8")[:_MAX_FOLDER_BYTES].decode("utf-8", errors="ignore").strip(" .")
    if (
        safe
        and safe == term
        and term.casefold() == term
        and not term.startswith("_")
        and not _HASH_SUFFIX.search(term)
        and not _WINDOWS_RESERVED.fullmatch(term)
    ):
        return safe
    digest = hashlib.sha256(term.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe or 'term'}-{digest}"


def check_rater(rater: str) -> str:
    """The rater's name if it is a safe file name (letters, digits, _ and -, up to 64), else a GimgError."""
    if not isinstance(rater, str) or not _RATER.fullmatch(rater) or _WINDOWS_RESERVED.fullmatch(rater):
        raise GimgError(f"rater name {rater!r} is not a safe file name: use up to 64 letters, digits, _ or -, "
                        "starting with a letter or digit")
    return rater


def read_terms(path: Path) -> list[str]:
    """Search terms from a text file: one per line; blank lines and `#` comments are ignored."""
    path = Path(path)
    if not path.is_file():
        raise GimgError(f"terms file {path} not found: give a text file with one search term per line")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise GimgError(f"terms file {path} is not UTF-8 text ({error.reason}): save it as UTF-8") from None
    terms = [line.strip() for line in text.splitlines()]
    terms = [term for term in terms if term and not term.startswith("#")]
    if not terms:
        raise GimgError(f"terms file {path} has no search terms: write one term per line")
    return list(dict.fromkeys(terms))


class Layout:
    """The output tree below one `--out` folder."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)

    def downloaded(self, term: str) -> Path:
        return self.out / DOWNLOADED / folder_name(term)

    def manifest(self, term: str) -> Path:
        return self.downloaded(term) / MANIFEST

    def quarantine(self, term: str) -> Path:
        return self.downloaded(term) / QUARANTINE

    def journal(self, term: str) -> Path:
        return self.downloaded(term) / JOURNAL

    def search_record(self, term: str) -> Path:
        return self.downloaded(term) / SEARCH

    def near_duplicates(self, term: str) -> Path:
        return self.downloaded(term) / NEAR_DUPLICATES

    @property
    def download_summary(self) -> Path:
        """One row per downloaded term: counts by status, the share downloaded, and a low-yield flag."""
        return self.out / DOWNLOAD_SUMMARY

    def cropped(self, term: str) -> Path:
        return self.out / CROPPED / folder_name(term)

    def faces(self, term: str) -> Path:
        return self.cropped(term) / FACES

    def dataset(self, term: str) -> Path:
        return self.out / DATASETS / f"{folder_name(term)}.csv"

    @property
    def analysis(self) -> Path:
        return self.out / ANALYSIS

    @property
    def summary_csv(self) -> Path:
        return self.analysis / "summary.csv"

    @property
    def analysis_json(self) -> Path:
        return self.analysis / "analysis.json"

    @property
    def scatter_png(self) -> Path:
        return self.analysis / "scatter.png"

    @property
    def report_html(self) -> Path:
        return self.analysis / "report.html"

    @property
    def evaluation_json(self) -> Path:
        """What `gimg evaluate` writes at the top of its output folder, with predictions.csv and misclassified.png."""
        return self.out / EVALUATION_JSON

    @property
    def predictions_csv(self) -> Path:
        return self.out / "predictions.csv"

    @property
    def misclassified_png(self) -> Path:
        return self.out / "misclassified.png"

    @property
    def misclassified_heatmaps_png(self) -> Path:
        """Heat maps of the misclassified faces of `gimg evaluate` with one model, most confident first."""
        return self.out / "misclassified_heatmaps.png"

    @property
    def comparison_csvs(self) -> dict[str, Path]:
        """`gimg evaluate` with several models: one row per model, per model and group, per face they split on."""
        return {"summary": self.out / "comparison.csv", "groups": self.out / "comparison_groups.csv",
                "disagreements": self.out / "disagreements.csv"}

    @property
    def demo_site(self) -> Path:
        """The local engine's site that `gimg demo` builds and serves: img/, index.csv (the truth), terms.txt."""
        return self.out / DEMO_SITE

    @property
    def validation(self) -> Path:
        """The labelled sample of the study's own faces: sample.csv, strata.csv, labels/, majority.csv, evaluation."""
        return self.out / VALIDATION

    @property
    def sample_csv(self) -> Path:
        """The sampled faces (item, term, image, crop, box, order, predicted), fixed once drawn."""
        return self.validation / "sample.csv"

    @property
    def strata_csv(self) -> Path:
        """Counted and sampled faces per term and predicted class, as the sample was drawn."""
        return self.validation / "strata.csv"

    @property
    def labels(self) -> Path:
        return self.validation / LABELS

    def rater_labels(self, rater: str) -> Path:
        """One rater's answers; the name must be a safe file name (check_rater)."""
        return self.labels / f"{check_rater(rater)}.csv"

    def rater_lock(self, rater: str) -> Path:
        """The lock that keeps two writers of one rater's answers apart."""
        return self.labels / f".{check_rater(rater)}.lock"

    def raters(self) -> list[str]:
        """The raters with an answer file, in name order."""
        return sorted(path.stem for path in self.labels.glob("*.csv") if _RATER.fullmatch(path.stem))

    @property
    def majority_csv(self) -> Path:
        return self.validation / "majority.csv"

    @property
    def study_evaluation(self) -> Path:
        """The error rates measured on the study's own labelled faces, which analyze corrects with when present."""
        return self.validation / EVALUATION_JSON

    def run_record(self, started: datetime, command: str) -> Path:
        """Where a run leaves its resolved options: OUT/runs/<UTC time>-<command>.toml."""
        return self.out / RUNS / f"{started.strftime('%Y%m%dT%H%M%S.%fZ')}-{command}.toml"

    @property
    def terms_index(self) -> Path:
        return self.out / TERMS_INDEX

    def remember_terms(self, terms: list[str], stale_after: float = DEFAULT_STALE_AFTER) -> None:
        """Add terms to the index that maps folder names back to the terms a user typed.

        Processes on any node may add terms at once: each reads, merges and writes the index under its claim
        (stale_after, as --stale-after, frees the claim of a worker that died holding it).
        """
        if self.terms_index.exists() and set(terms) <= set(self.known_terms()):
            return
        path = self.claim_path(TERMS_INDEX_CLAIM, None)
        with claim(path, stage=TERMS_INDEX_CLAIM, term=WHOLE_STAGE, stale_after=stale_after, poll=0.02):
            known = self.known_terms()
            new = [term for term in dict.fromkeys(terms) if term not in known]
            if new or not self.terms_index.exists():
                rows = [{"term": term, "folder": folder_name(term)} for term in known + new]
                write_csv(self.terms_index, rows, ["term", "folder"])

    def known_terms(self) -> list[str]:
        """Every term ever downloaded into this tree, in the order first seen."""
        if not self.terms_index.exists():
            return []
        with self.terms_index.open(newline="", encoding="utf-8") as handle:
            return [row["term"] for row in csv.DictReader(handle)]

    def claims(self, stage: str) -> Path:
        """The folder of one stage's claims (stageclaims.StageClaims)."""
        return self.out / CLAIMS / stage

    def claim_path(self, stage: str, term: str | None) -> Path:
        """The claim file of a term in a stage; term None: of the whole stage."""
        return self.claims(stage) / f"{WHOLE_STAGE if term is None else folder_name(term)}.claim"

    def terms_with(self, marker: str) -> list[str]:
        """Known terms whose given stage output exists (`manifest`, `faces` or `dataset`)."""
        locate = getattr(self, marker)
        return [term for term in self.known_terms() if locate(term).exists()]

    def require_terms_with(self, marker: str, stage: str, previous: str) -> list[str]:
        """Like terms_with, but raises a one-line instruction when there are none."""
        terms = self.terms_with(marker)
        if not terms:
            raise MissingInputError(
                f"nothing to {stage} in {self.out}: run `gimg {previous}` first (or pass the right --out)"
            )
        return terms

    # Study designs (gimg.design): the index of waves and branches, run records, and the comparison.

    @property
    def study_index(self) -> Path:
        """OUT/study.json: the study's waves and branches, each branch a complete output tree of its own."""
        return self.out / STUDY_INDEX

    def context_record(self, run: str) -> Path:
        """What one download run asked its engine (gimg.engines.record.ContextRecord): context/<run id>.json."""
        return self.out / CONTEXT / f"{run}.json"

    def search_list(self, run: str) -> Path:
        """The result lists `gimg search` wrote in one run: searches/<run id>.csv, replayable with --engine urls."""
        return self.out / SEARCHES / f"{run}.csv"

    def search_context(self, run: str, branch: str) -> Path:
        """The context record of one engine and market of a `gimg search` run."""
        return self.out / SEARCHES / f"{run}-{branch}.json"

    @property
    def ranks_csv(self) -> Path:
        """Per term: share, rank-weighted share, first woman's and man's rank, mean ranks."""
        return self.analysis / "ranks.csv"

    @property
    def rank_bands_csv(self) -> Path:
        """The share of women in each rank band (1-10, 11-20, 21-50, 51-100, 101+), with intervals."""
        return self.analysis / "rank_bands.csv"

    @property
    def rank_bands_png(self) -> Path:
        return self.analysis / "rank_bands.png"

    @property
    def comparison(self) -> Path:
        """OUT/comparison/: the branches of a study side by side, their differences, overlap, drift, report."""
        return self.out / COMPARISON

    @property
    def comparison_branches_csv(self) -> Path:
        """One row per analysed branch: its headline numbers (census comparison, exaggeration, rank test)."""
        return self.comparison / "branches.csv"

    @property
    def side_by_side_csv(self) -> Path:
        """The share of women per term in each branch, with intervals."""
        return self.comparison / "side_by_side.csv"

    @property
    def differences_csv(self) -> Path:
        """Per term, the difference between two engines (or markets) of one wave, with intervals."""
        return self.comparison / "differences.csv"

    @property
    def drift_csv(self) -> Path:
        """Per term, the change between two waves of one engine and market, with intervals and a flag."""
        return self.comparison / "drift.csv"

    @property
    def overlap_csv(self) -> Path:
        """Per term, how many result URLs two branches share (Jaccard index)."""
        return self.comparison / "overlap.csv"

    @property
    def comparison_bands_csv(self) -> Path:
        """The share of women by rank band in each branch."""
        return self.comparison / "rank_bands.csv"

    @property
    def comparison_json(self) -> Path:
        return self.comparison / "comparison.json"

    @property
    def comparison_report(self) -> Path:
        return self.comparison / "report.html"

    def comparison_figure(self, name: str) -> Path:
        """One of the comparison's figures as PNG: engines, drift or rank_bands."""
        return self.comparison / f"{name}.png"


class ModelDir:
    """The folder `gimg train` writes: model.onnx, evaluation.json, manifest.json (last: the completion marker)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    @property
    def model_onnx(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def manifest(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def evaluation_json(self) -> Path:
        """The evaluation of the validation split, in `gimg evaluate`'s format (what analyze corrects with)."""
        return self.folder / EVALUATION_JSON

    @property
    def faces(self) -> Path:
        """The output tree in which the crop stage finds the labelled faces (a rerun reuses it)."""
        return self.folder / "faces"


def is_model_dir(path: Path | str) -> bool:
    """Whether path is a folder holding a trained model's manifest (what `--model MODEL_DIR` accepts)."""
    return ModelDir(path).manifest.is_file()


def settings_path(output: Path) -> Path:
    """The file beside an output that records the options it was made with."""
    return output.with_name(f"{output.stem}.settings.json")


def is_fresh(output: Path, source: Path, settings: dict | None = None) -> bool:
    """True when output exists, was written after source and, if given, with these settings: that work is done."""
    if not (output.exists() and output.stat().st_mtime_ns >= source.stat().st_mtime_ns):
        return False
    if settings is None:
        return True
    try:
        return json.loads(settings_path(output).read_text(encoding="utf-8")) == settings
    except (OSError, ValueError):  # no record, or a damaged one: the output cannot be trusted to match
        return False


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside target, renamed onto it only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp makes files private; outputs are meant to be shared
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_csv(target: Path, rows: list[dict], columns: list[str], settings: dict | None = None) -> None:
    """Write rows to a CSV atomically, with a fixed column order, then the settings it was made with.

    The settings come second, so a run killed in between leaves outputs that is_fresh will redo.
    """
    with atomic_path(target) as temporary:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    if settings is not None:
        with atomic_path(settings_path(target)) as temporary:
            temporary.write_text(json.dumps(settings, sort_keys=True), encoding="utf-8")


def _json_ready(value):
    """A copy with NaN as null (strict JSON has no NaN), tuples as lists and paths as text."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return None if isinstance(value, float) and value != value else value


def write_json(target: Path, document: dict) -> None:
    """Write document as indented strict JSON (NaN as null), atomically."""
    text = json.dumps(_json_ready(document), indent=2, allow_nan=False)
    with atomic_path(Path(target)) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
