"""notebooks/analysis.ipynb runs headless against an analysed output tree and reproduces its numbers."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from test_analyze import analyse

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"


def _outputs(notebook: nbformat.NotebookNode) -> str:
    """All text the notebook printed or displayed."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def run_notebook(monkeypatch, out: Path, study: Path | None = None) -> tuple[str, int]:
    """Execute the notebook headless on out (and the study at study); what it printed, and how many figures."""
    monkeypatch.setenv("GIMG_OUT", str(out))
    if study is not None:
        monkeypatch.setenv("GIMG_STUDY", str(study))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    return _outputs(notebook), sum("image/png" in output.get("data", {}) for output in outputs)


@pytest.mark.parametrize(
    "options",
    [{}, {"cutoff": 0.6, "policy": "all"}, {"policy": "single", "min_box": 15},
     {"model": "caffe:levi-hassner", "evaluation": None}],
)
def test_notebook_reproduces_the_analysis(tmp_path, monkeypatch, options):
    result = analyse(tmp_path, **options)
    printed, figures = run_notebook(monkeypatch, tmp_path / "out")
    assert f"Pearson r = {result.pearson_r:.3f}" in printed
    assert f"Spearman rho = {result.spearman_rho:.3f}" in printed
    assert f"mean difference (search - census) = {result.mean_difference:.3f}" in printed
    assert result.literature.exaggeration_sentence() in printed
    assert f"permutation p = {result.literature.rank_test.p_value:.3f}" in printed
    assert "no comparison: this study has one branch" in printed
    assert figures == 2  # the scatter, and the shares by rank band


def test_notebook_draws_the_study_comparison(tmp_path, monkeypatch):
    """A study of two engines in two waves (synthetic trees): the comparison's figures, drawn from its CSVs."""
    from gimg.design import Branch, StudyDesign, Wave, write_design
    from gimg.options import AnalyzeOptions
    from gimg.pipeline import run_study_analyze
    from test_analyze import TREE, write_census, write_test_evaluation, write_tree

    out = tmp_path / "study"
    changed = {**TREE, "plumber": [("downloaded", [(50, 0.9)]), ("downloaded", [(50, 0.8)]),
                                   ("downloaded", [(50, 0.7)])]}
    branches = [Branch(wave, engine, None, f"{wave}/{engine}") for wave in ("w1", "w2")
                for engine in ("bing", "duckduckgo")]
    for branch in branches:
        write_tree(branch.path(out), changed if branch.wave == "w2" and branch.engine == "bing" else TREE)
    write_design(out, StudyDesign((Wave("w1", "2026-11-01T00:00:00Z"), Wave("w2", "2026-11-08T00:00:00Z")),
                                  tuple(branches)))
    options = AnalyzeOptions(census=write_census(tmp_path / "census.csv"), min_faces=1, resamples=200,
                             evaluation=write_test_evaluation(tmp_path / "evaluation.json"))
    _, comparison = run_study_analyze(out, options)
    drift = comparison.drift[comparison.drift["term"] != "(all terms)"]
    printed, figures = run_notebook(monkeypatch, out / "w1" / "bing", out)
    assert f"drift: {int(drift.excludes_zero.sum())} of {len(drift)} term changes" in printed
    assert figures == 5  # the branch's two, and the study's side by side, drift and rank bands
