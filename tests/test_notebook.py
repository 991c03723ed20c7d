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


@pytest.mark.parametrize(
    "options",
    [{}, {"cutoff": 0.6, "policy": "all"}, {"policy": "single", "min_box": 15},
     {"model": "caffe:levi-hassner", "evaluation": None}],
)
def test_notebook_reproduces_the_analysis(tmp_path, monkeypatch, options):
    result = analyse(tmp_path, **options)
    monkeypatch.setenv("GIMG_OUT", str(tmp_path / "out"))

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()

    printed = _outputs(notebook)
    assert f"Pearson r = {result.pearson_r:.3f}" in printed
    assert f"Spearman rho = {result.spearman_rho:.3f}" in printed
    assert f"mean difference (search - census) = {result.mean_difference:.3f}" in printed
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert sum("image/png" in output.get("data", {}) for output in outputs) == 1
