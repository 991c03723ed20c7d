"""The shifted set: a study of UTKFace faces degraded so that the default classifier errs far more than on the clear
UTKFace crops its shipped rates were measured on, run through the real CLI with labels of a sample from the truth.

Used by tests/test_shifted.py and bench/shifted.py. Faces of people aged MIN_AGE or more are made grey, blurred and
darker; five terms with 5, 20, 50, 80 and 95% women are served by the local engine on 127.0.0.1; `gimg pipeline`
analyzes them with the shipped rates; `gimg label sample`, `gimg label import` (labels from the site's truth) and
`gimg analyze` then correct with the study's own rates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from gimg.cli import main
from gimg.correction import default_evaluation_path, load_evaluation
from gimg.layout import Layout, write_csv
from gimg.localengine import build_site, serve_site, served_truth, truth_labels
from gimg.validation import counted_faces, read_sample

SHARES = {"share 05": 0.05, "share 20": 0.2, "share 50": 0.5, "share 80": 0.8, "share 95": 0.95}
MIN_AGE = 40
BLUR = 3.0
BRIGHTNESS = 0.45


def gimg(*args) -> int:
    """Run `gimg ARGS...` through the real entry point, in process; return its exit code."""
    saved = sys.argv
    sys.argv = ["gimg", *map(str, args)]
    try:
        main()
    except SystemExit as done:
        return done.code or 0
    finally:
        sys.argv = saved
    return 0


def degrade(source: Path, target: Path) -> None:
    """Grey, blurred and darker: a face unlike the tight, clear UTKFace crops the shipped rates come from."""
    with Image.open(source) as image:
        grey = ImageOps.grayscale(image).convert("RGB")
    blurred = grey.filter(ImageFilter.GaussianBlur(BLUR))
    ImageEnhance.Brightness(blurred).enhance(BRIGHTNESS).save(target, quality=85)


def degraded_faces(shared_data: Path, folder: Path) -> pd.DataFrame:
    """The degraded faces of people aged MIN_AGE or more in folder, and their labels (file, gender, race, age)."""
    faces = shared_data / "faces" / "utkface"
    labels = pd.read_csv(faces / "labels.csv")
    labels = labels[labels["age"] >= MIN_AGE].reset_index(drop=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name in labels["file"]:
        if not (folder / name).exists():
            degrade(faces / "images" / name, folder / name)
    return labels


def run_shifted(shared_data: Path, root: Path, per_term: int, sample: int, seed: int) -> pd.DataFrame:
    """The whole experiment under root; per term: truth, faces, raw, shipped- and study-rate corrected shares."""
    labels = degraded_faces(shared_data, root / "faces")
    site, study = root / "site", root / "study"
    build_site(labels, root / "faces", site, SHARES, per_term=per_term, seed=seed)
    terms = root / "terms.txt"
    terms.write_text("".join(f"{term}\n" for term in SHARES))
    analysis = ("--min-faces", 20, "--seed", seed)
    with serve_site(site) as url:
        code = gimg("pipeline", terms, "--out", study, "--engine-url", url, "--limit", per_term, "--workers", 2,
                    *analysis)
    assert code == 0, "gimg pipeline failed"
    layout = Layout(study)
    shipped = pd.read_csv(layout.summary_csv).set_index("term")
    assert gimg("label", "sample", "--out", study, "--n", sample, "--seed", seed) == 0
    answers = truth_labels(read_sample(study), served_truth(study, site), {"truth": 0})
    write_csv(root / "labels.csv", answers.to_dict("records"), list(answers.columns))
    assert gimg("label", "import", root / "labels.csv", "--out", study) == 0
    assert gimg("analyze", "--out", study, *analysis) == 0
    assert json.loads(layout.analysis_json.read_text())["evaluation"]["domain"] == "study"
    own = pd.read_csv(layout.summary_csv).set_index("term")
    columns = ["corrected_share", "corrected_low", "corrected_high"]
    table = pd.concat([shipped[["faces", "share_women", *columns]],
                       own[columns].rename(columns=lambda name: name.replace("corrected", "study"))], axis=1)
    table = table.rename(columns=lambda name: name.replace("corrected", "shipped"))
    table = table.rename(columns={"share_women": "raw"})
    return table.assign(truth=pd.Series(SHARES)).reset_index()


def rates(root: Path) -> str:
    """The study's estimated rates, and the rates realized on all its counted faces (from the site's truth)."""
    study, shipped = Layout(root / "study"), load_evaluation(default_evaluation_path("onnx"))
    measured = json.loads(study.study_evaluation.read_text())["study"]
    faces = counted_faces(study.out)
    woman = faces["image"].map(served_truth(study.out, root / "site")) == "female"
    called = faces["predicted"] == "female"
    low, high = measured["intervals"]["sensitivity"]
    return (f"study rates from {measured['labelled']} labels: sensitivity {measured['sensitivity']:.3f} "
            f"[{low:.3f}, {high:.3f}], specificity {measured['specificity']:.3f} "
            f"[{measured['intervals']['specificity'][0]:.3f}, {measured['intervals']['specificity'][1]:.3f}]; "
            f"realized on all {len(faces)} counted faces: sensitivity {called[woman].mean():.3f}, specificity "
            f"{(~called[~woman]).mean():.3f}; shipped (UTKFace): {shipped.sensitivity:.3f} / {shipped.specificity:.3f}")


def describe(table: pd.DataFrame, root: Path) -> str:
    """The table, the rates, and how far each correction lands from the truth, for a person (and the issue's note)."""
    lines = [rates(root), table.to_string(index=False, float_format="{:.3f}".format)]
    for name in ("shipped", "study"):
        error = (table[f"{name}_share"] - table["truth"]).abs().max()
        covered = ((table[f"{name}_low"] <= table["truth"]) & (table["truth"] <= table[f"{name}_high"])).sum()
        lines.append(f"{name}-rate correction: largest error {error:.3f}; intervals cover the truth for {covered} of "
                     f"{len(table)} terms")
    return "\n".join(lines)
