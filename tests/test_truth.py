"""A truth test the correction must pass and the raw shares cannot: terms with known shares of women, on faces the
classifier often gets wrong, through `gimg pipeline`, corrected with an evaluation of those faces.

The shared UTKFace faces are made grey, blurred and darker, and placed on plain backgrounds as the local engine's
pictures are; on them the default classifier calls about one man in five a woman (specificity near 0.8 instead of
0.96), so a term of 5% women comes out above 20% raw. One half of the faces, framed the same way, is evaluated with
`gimg evaluate`; the terms are built from the other half, so the correction is tested out of sample, but on the
same kind of image (rates measured on another kind do not transfer: see `gimg label`).

The corrected shares carry two errors: a term's ~390 faces (about 2.5 points of standard error at 25% raw, scaled
up by the correction) and the specificity measured on ~500 men (about 2 points more at 5% women): about 3.5 points
in all. The tolerance, 7 points, is two of those. With the default path (YuNet, 4x chips) and this degradation (blur
3, brightness 0.45), three seed pairs (11/5, 12/6, 13/7) gave specificities of 0.79-0.80 and largest corrected
errors of 0.7, 5.8 and 2.7 points. The raw share of the 5% term misses by 19 to 23 points, more than twice the
tolerance: a pipeline that skipped the correction fails this test.
"""

from __future__ import annotations

import json
import sys
import zlib

import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from gimg.cli import main
from gimg.evaluate import run_evaluate
from gimg.localengine import build_site, compose_scene, serve_site
from gimg.options import EvaluateOptions, ExecutionOptions

SHARES = {"nurse": 0.05, "lawyer": 0.5, "electrician": 0.95}
PER_TERM = 400
TOLERANCE = 0.07


def degrade(source, target) -> None:
    """Grey, blurred and darker: faces unlike the clear, tight UTKFace crops the shipped rates come from."""
    with Image.open(source) as image:
        grey = ImageOps.grayscale(image).convert("RGB")
    ImageEnhance.Brightness(grey.filter(ImageFilter.GaussianBlur(3.0))).enhance(0.45).save(target, quality=85)


@pytest.fixture(scope="module")
def truth_run(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("truth")
    faces = shared_data / "faces" / "utkface"
    labels = pd.read_csv(faces / "labels.csv")
    (root / "faces").mkdir()
    for name in labels.file:
        degrade(faces / "images" / name, root / "faces" / name)
    terms_half = labels.sample(frac=0.5, random_state=11)
    evaluation_half = labels.drop(terms_half.index)
    (root / "framed").mkdir()
    for name in evaluation_half.file:
        with Image.open(root / "faces" / name) as face:
            compose_scene(face, seed=zlib.crc32(name.encode())).save(root / "framed" / name, quality=90)
    evaluation_labels = root / "evaluation_labels.csv"
    evaluation_half.to_csv(evaluation_labels, index=False)
    evaluation = run_evaluate(evaluation_labels, root / "evaluation", EvaluateOptions(images=root / "framed"),
                              execution=ExecutionOptions(workers=2))

    site = root / "site"
    build_site(terms_half, root / "faces", site, SHARES, per_term=PER_TERM, seed=5)
    (root / "terms.txt").write_text("\n".join(SHARES) + "\n")
    monkeypatch = pytest.MonkeyPatch()
    with serve_site(site) as base_url:
        monkeypatch.setattr(sys, "argv", [
            "gimg", "pipeline", str(root / "terms.txt"), "--out", str(root / "out"), "--engine-url", base_url,
            "--limit", str(PER_TERM), "--evaluation", str(evaluation.json_path), "--workers", "2",
        ])
        with pytest.raises(SystemExit) as done:
            main()
    monkeypatch.undo()
    assert (done.value.code or 0) == 0
    summary = pd.read_csv(root / "out" / "analysis" / "summary.csv").set_index("term")
    return summary.assign(truth=pd.Series(SHARES)), json.loads(evaluation.json_path.read_text())


def test_the_classifier_errs_on_these_faces(truth_run):
    _, evaluation = truth_run
    print("evaluation sensitivity", evaluation["sensitivity"], "specificity", evaluation["specificity"])
    assert evaluation["specificity"] < 0.9, "the degraded faces must be hard, or the test proves nothing"


def test_raw_shares_miss_by_far_more_than_the_tolerance(truth_run):
    summary, _ = truth_run
    raw_error = (summary.share_women - summary.truth).abs()
    assert raw_error.max() > 2 * TOLERANCE, "without the correction this test must fail"


def test_corrected_shares_are_within_the_tolerance_of_the_truth(truth_run):
    summary, _ = truth_run
    print(summary[["faces", "share_women", "corrected_share", "corrected_low", "corrected_high", "truth"]].to_string())
    assert (summary.faces >= 0.95 * PER_TERM).all()
    corrected_error = (summary.corrected_share - summary.truth).abs()
    assert (corrected_error <= TOLERANCE).all()
    raw_error = (summary.share_women - summary.truth).abs()
    assert (corrected_error[raw_error > TOLERANCE] < raw_error[raw_error > TOLERANCE]).all()


def test_intervals_cover_the_truth(truth_run):
    summary, _ = truth_run
    assert ((summary.corrected_low <= summary.truth) & (summary.truth <= summary.corrected_high)).all()
