"""A truth test: terms with known shares of women, served by the local engine, through `gimg pipeline`.

The classifier's error rates come from `gimg evaluate` on one half of the shared UTKFace faces; the terms are
built from the other half, so the correction is tested out of sample.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from gimg.cli import main
from gimg.evaluate import run_evaluate
from gimg.options import EvaluateOptions, ExecutionOptions
from gimg.localengine import build_site, serve_site

REPO = Path(__file__).resolve().parents[1]
SHARES = {"nurse": 0.1, "cashier": 0.3, "lawyer": 0.5, "librarian": 0.7, "electrician": 0.9}
PER_TERM = 100


@pytest.fixture(scope="module")
def truth_run(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("truth")
    faces = shared_data / "faces" / "utkface"
    labels = pd.read_csv(faces / "labels.csv")
    held_out = labels.sample(frac=0.5, random_state=11)
    evaluation_half = labels.drop(held_out.index)
    evaluation_labels = root / "evaluation_labels.csv"
    evaluation_half.to_csv(evaluation_labels, index=False)
    evaluation = run_evaluate(evaluation_labels, root / "evaluation", EvaluateOptions(images=faces / "images"),
                              execution=ExecutionOptions(workers=2))

    site = root / "site"
    build_site(held_out, faces / "images", site, SHARES, per_term=PER_TERM, seed=5, reuse=False)
    terms = root / "terms.txt"
    terms.write_text("\n".join(SHARES) + "\n")
    out = root / "out"
    monkeypatch = pytest.MonkeyPatch()
    with serve_site(site) as base_url:
        monkeypatch.setattr(sys, "argv", [
            "gimg", "pipeline", str(terms), "--out", str(out), "--engine-url", base_url, "--limit", str(PER_TERM),
            "--evaluation", str(evaluation.json_path), "--workers", "2",
        ])
        with pytest.raises(SystemExit) as done:
            main()
    monkeypatch.undo()
    assert (done.value.code or 0) == 0
    summary = pd.read_csv(out / "analysis" / "summary.csv").set_index("term")
    return summary.assign(truth=pd.Series(SHARES)), json.loads(evaluation.json_path.read_text())


def test_corrected_shares_are_within_five_points_of_the_truth(truth_run):
    summary, evaluation = truth_run
    print(summary[["faces", "share_women", "corrected_share", "corrected_low", "corrected_high", "truth"]].to_string())
    print("evaluation sensitivity", evaluation["sensitivity"], "specificity", evaluation["specificity"])
    assert (summary.faces >= 0.9 * PER_TERM).all()
    assert ((summary.corrected_share - summary.truth).abs() <= 0.05).all()


def test_intervals_cover_the_truth(truth_run):
    summary, _ = truth_run
    covered = (summary.corrected_low <= summary.truth) & (summary.truth <= summary.corrected_high)
    assert covered.sum() >= len(SHARES) - 1


def test_raw_shares_miss_the_extremes_by_more_than_corrected_ones(truth_run):
    summary, _ = truth_run
    extremes = summary.loc[["nurse", "electrician"]]
    raw_error = (extremes.share_women - extremes.truth).abs().mean()
    corrected_error = (extremes.corrected_share - extremes.truth).abs().mean()
    assert raw_error > corrected_error
