"""Human labels on a sample of the study's own counted faces: drawing the sample, and keeping and importing labels.

validation/ below --out (its paths are in layout.py) holds sample.csv (the items, fixed once drawn), strata.csv (how
many counted faces each term has in each predicted class, and how many were sampled), labels/<rater>.csv (one row
per item a rater answered), and what labelreport writes from them.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd

from .analyze import read_term_faces
from .errors import GimgError, MissingInputError
from .layout import CROPPED, DOWNLOADED, Layout, check_rater, folder_name, settings_path, write_csv
from .options import AnalyzeOptions, SampleOptions, counting
from .studyrates import LABELS, PREDICTED, allocation_order

SAMPLE_COLUMNS = ["item", "term", "image", "crop", "left", "top", "right", "bottom", "order", "predicted",
                  "p_female"]
RATER_FIELDS = ["item", "term", "image", "crop", "left", "top", "right", "bottom"]  # what the page may use
STRATA_COLUMNS = ["term", "predicted", "faces", "sampled"]
LABEL_COLUMNS = ["item", "rater", "label", "time"]
IMPORT_COLUMNS = ("item", "rater", "label")


def counted_faces(out: Path, options: AnalyzeOptions = AnalyzeOptions()) -> pd.DataFrame:
    """Every face analyze counts under these options, with its term, image, crop (paths relative to out) and box.

    A face's item id comes from its term, its image's content (sha256) and its box, not from file names or URLs, so
    the same study downloaded again (from a mirror, or a test server on another port) gets the same sample.
    """
    layout = Layout(out)
    terms = layout.require_terms_with("dataset", "sample", "classify")
    frames = []
    for term in terms:
        used = read_term_faces(layout, term, options).used
        manifest = pd.read_csv(layout.manifest(term), dtype=str, keep_default_na=False)
        content = dict(zip(manifest["file"], manifest["sha256"]))
        folder = folder_name(term)
        boxes = {side: used[side].astype(int).to_numpy() for side in ("left", "top", "right", "bottom")}
        frames.append(pd.DataFrame({
            "item": [_item_id(term, content[name], box) for name, *box in zip(used["image"], *boxes.values())],
            "term": term,
            "image": [f"{DOWNLOADED}/{folder}/{name}" for name in used["image"]],
            "crop": [f"{CROPPED}/{folder}/{name}" for name in used["file"]],
            **boxes,
            "p_female": used["p_female"].to_numpy(dtype=float),
        }))
    faces = pd.concat(frames, ignore_index=True)
    faces["predicted"] = (faces["p_female"] >= options.cutoff).map({True: "female", False: "male"})
    return faces


def _item_id(term: str, image_sha256: str, box: list[int]) -> str:
    """A short id for a face that stays the same however often, and from wherever, the study is downloaded."""
    return hashlib.sha256(f"{term}\0{image_sha256}\0{box}".encode("utf-8")).hexdigest()[:12]


def _ordered_sample(faces: pd.DataFrame, sample: SampleOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first n faces of the study's labelling order, and the strata table (every term x predicted class)."""
    keys = [hashlib.sha256(f"{sample.seed}\0{item}".encode()).hexdigest() for item in faces["item"]]
    shuffled = faces.assign(_key=keys).sort_values(["term", "predicted", "_key"], kind="stable")
    cells = [(term, kind) for term in dict.fromkeys(faces["term"]) for kind in PREDICTED]
    groups = {cell: group for cell, group in shuffled.groupby(["term", "predicted"], sort=False)}
    sizes = [len(groups.get(cell, ())) for cell in cells]
    order = allocation_order(sizes, [kind for _, kind in cells], sample.n)
    taken = [0] * len(cells)
    rows = []
    for position, cell in enumerate(order, start=1):
        rows.append(groups[cells[cell]].iloc[taken[cell]].to_dict() | {"order": position})
        taken[cell] += 1
    drawn = pd.DataFrame(rows, columns=[*faces.columns, "_key", "order"]).drop(columns="_key")
    strata = pd.DataFrame([{"term": term, "predicted": kind, "faces": size, "sampled": count}
                           for (term, kind), size, count in zip(cells, sizes, taken)], columns=STRATA_COLUMNS)
    return drawn[SAMPLE_COLUMNS], strata


def draw_sample(out: Path, sample: SampleOptions = SampleOptions(),
                options: AnalyzeOptions = AnalyzeOptions()) -> pd.DataFrame:
    """Draw (or extend) validation/sample.csv: sample.n of the faces these analysis options count, stratified by
    term and predicted class.

    A sample already drawn is kept: a larger n adds items after it, a smaller one changes nothing. Drawing with
    another seed or other counting options (policy, cutoff, min_box), or after the study's counted faces changed, is
    refused (move validation/ away first). Also writes validation/strata.csv. Returns the sample.
    """
    layout = Layout(out)
    settings = {"seed": sample.seed, "counting": counting(options)}
    existing = read_sample(out) if layout.sample_csv.is_file() else None
    if existing is not None:
        recorded = json.loads(settings_path(layout.sample_csv).read_text(encoding="utf-8"))
        if recorded != settings:
            raise GimgError(f"{layout.sample_csv} was drawn with {recorded}, not {settings}: draw with the same "
                            f"options, or move {layout.validation} away to start a new sample")
        if sample.n <= len(existing):
            return existing
    drawn, strata = _ordered_sample(counted_faces(out, options), sample)
    if existing is not None and drawn["item"].head(len(existing)).tolist() != existing["item"].tolist():
        raise GimgError(f"the study's counted faces changed since {layout.sample_csv} was drawn: move "
                        f"{layout.validation} away to draw a new sample, or restore the study")
    write_csv(layout.strata_csv, strata.to_dict("records"), STRATA_COLUMNS)
    write_csv(layout.sample_csv, drawn.to_dict("records"), SAMPLE_COLUMNS, settings=settings)
    return drawn


def sample_counting(out: Path) -> dict:
    """The counting options (policy, cutoff, min_box) the sample under out was drawn with."""
    layout = Layout(out)
    read_sample(out)
    return json.loads(settings_path(layout.sample_csv).read_text(encoding="utf-8"))["counting"]


def read_sample(out: Path) -> pd.DataFrame:
    """validation/sample.csv, or a one-line instruction to draw it."""
    path = Layout(out).sample_csv
    if not path.is_file():
        raise MissingInputError(f"no sample in {path.parent}: run `gimg label sample` first")
    return pd.read_csv(path, dtype={"item": str, "term": str, "image": str, "crop": str, "predicted": str},
                       keep_default_na=False)


def read_strata(out: Path) -> pd.DataFrame:
    """validation/strata.csv: faces and sampled faces per term and predicted class."""
    path = Layout(out).strata_csv
    if not path.is_file():
        raise MissingInputError(f"no strata in {path.parent}: run `gimg label sample` again")
    return pd.read_csv(path, dtype={"term": str, "predicted": str}, keep_default_na=False)


def read_rater_labels(out: Path, rater: str) -> pd.DataFrame:
    """One rater's labels (LABEL_COLUMNS), empty when the rater has none yet."""
    path = Layout(out).rater_labels(rater)
    if not path.is_file():
        return pd.DataFrame(columns=LABEL_COLUMNS)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def read_labels(out: Path) -> pd.DataFrame:
    """Every rater's labels (LABEL_COLUMNS) for items still in the sample."""
    frames = [read_rater_labels(out, rater) for rater in Layout(out).raters()]
    labels = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LABEL_COLUMNS)
    return labels[labels["item"].isin(set(read_sample(out)["item"]))].reset_index(drop=True)


@contextmanager
def _locked(out: Path, rater: str) -> Iterator[None]:
    """Hold the rater's lock, so two servers or an import never interleave their read-modify-write."""
    lock = Layout(out).rater_lock(rater)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write_rater(out: Path, rater: str, labels: pd.DataFrame) -> None:
    write_csv(Layout(out).rater_labels(rater), labels.to_dict("records"), LABEL_COLUMNS)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_answer(items: set[str], item: str, label: str) -> None:
    """Refuse an item outside the sample or a label outside LABELS with a one-line GimgError."""
    if item not in items:
        raise GimgError(f"unknown item {item!r}: it is not in the sample")
    if label not in LABELS:
        raise GimgError(f"unknown label {label!r}: use one of {', '.join(LABELS)}")


def save_label(out: Path, rater: str, item: str, label: str, items: set[str] | None = None) -> pd.DataFrame:
    """Record one answer at once and atomically (a new answer to the same item replaces it); return the rater's."""
    check_rater(rater)
    check_answer(items if items is not None else set(read_sample(out)["item"]), item, label)
    with _locked(out, rater):
        labels = read_rater_labels(out, rater)
        labels = labels[labels["item"] != item]
        labels = pd.concat([labels, pd.DataFrame([{"item": item, "rater": rater, "label": label, "time": _now()}])],
                           ignore_index=True)
        _write_rater(out, rater, labels)
    return labels


def undo_label(out: Path, rater: str) -> tuple[str | None, pd.DataFrame]:
    """Take back the rater's latest answer; return its item (None when there was none) and the rater's labels."""
    with _locked(out, rater):
        labels = read_rater_labels(out, rater)
        if labels.empty:
            return None, labels
        latest = labels.sort_values("time", kind="stable").index[-1]
        item = str(labels.at[latest, "item"])
        labels = labels.drop(index=latest).reset_index(drop=True)
        _write_rater(out, rater, labels)
    return item, labels


def import_labels(out: Path, source: Path) -> dict[str, int]:
    """Bring in labels made elsewhere: a CSV with item, rater and label columns (others are ignored).

    Every line is checked first; an unknown item or label, an unsafe rater name or an item given twice for one
    rater is refused with its line number, and then nothing is imported. An imported answer replaces the rater's
    earlier answer to that item. Returns how many answers were imported per rater.
    """
    source = Path(source)
    if not source.is_file():
        raise MissingInputError(f"labels file {source} not found: give a CSV with columns item, rater, label")
    items = set(read_sample(out)["item"])
    answers: dict[str, dict[str, str]] = {}
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in IMPORT_COLUMNS if column not in (reader.fieldnames or [])]
            if missing:
                raise GimgError(f"{source} lacks column(s) {', '.join(missing)}: it needs item, rater, label")
            for row in reader:
                where = f"{source} line {reader.line_num}"
                item, rater, label = ((row[column] or "").strip() for column in IMPORT_COLUMNS)
                try:
                    check_rater(rater)
                    check_answer(items, item, label.lower())
                except GimgError as error:
                    raise GimgError(f"{where}: {error}; nothing was imported") from None
                if item in answers.setdefault(rater, {}):
                    raise GimgError(f"{where}: item {item!r} is given twice for rater {rater!r}; nothing was imported")
                answers[rater][item] = label.lower()
    except UnicodeDecodeError as error:
        raise GimgError(f"{source} is not UTF-8 text ({error.reason}): save it as UTF-8; nothing was imported") from None
    if not answers:
        raise GimgError(f"{source} has no labels: nothing was imported")
    time = _now()
    for rater, given in answers.items():
        with _locked(out, rater):
            labels = read_rater_labels(out, rater)
            labels = labels[~labels["item"].isin(set(given))]
            new = pd.DataFrame([{"item": item, "rater": rater, "label": label, "time": time}
                                for item, label in given.items()])
            _write_rater(out, rater, pd.concat([labels, new], ignore_index=True))
    return {rater: len(given) for rater, given in answers.items()}
