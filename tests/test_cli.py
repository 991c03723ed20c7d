"""The CLI in process: help everywhere, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gimg.cli import cli

REPO = Path(__file__).resolve().parents[1]
COMMANDS = sorted(cli.commands)


def test_every_command_has_help_with_an_example(gimg):
    for command in COMMANDS:
        code, out, _ = gimg(command, "--help")
        assert code == 0
        assert "Example: gimg" in out
        for option in cli.commands[command].params:
            if option.param_type_name == "option":
                assert option.help, f"{command} {option.name} has no help"


def test_every_command_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for command in COMMANDS:
        assert f"gimg {command}" in readme


def test_version(gimg):
    code, out, _ = gimg("--version")
    assert code == 0 and "gimg" in out


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_terms_file(gimg, tmp_path):
    code, _, err = gimg("download", tmp_path / "nope.txt", "--out", tmp_path)
    assert code == 2
    assert "not found" in one_line_error(err)


def test_empty_terms_file(gimg, tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("# only a comment\n\n   \n")
    code, _, err = gimg("pipeline", terms, "--out", tmp_path)
    assert code == 2
    assert "no search terms" in one_line_error(err)


def test_unknown_engine(gimg, tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("nurse\n")
    code, _, err = gimg("download", terms, "--engine", "altavista", "--out", tmp_path)
    assert code == 2
    line = one_line_error(err)
    assert "altavista" in line and "bing" in line


@pytest.mark.parametrize(
    "args, expected",
    [
        (["crop"], "gimg download"),
        (["classify"], "gimg crop"),
        (["analyze"], "gimg classify"),
    ],
)
def test_stage_before_its_input_exists(gimg, tmp_path, args, expected):
    code, _, err = gimg(*args, "--out", tmp_path)
    assert code == 2
    assert expected in one_line_error(err)


def test_missing_census_file(gimg, tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("nurse\n")
    code, _, err = gimg("pipeline", terms, "--out", tmp_path, "--census", tmp_path / "census.csv")
    assert code == 2
    assert "census" in one_line_error(err)
    assert not (tmp_path / "Downloaded_images").exists(), "the census is checked before any download"


@pytest.mark.skipif(
    "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(), reason="this machine has CUDA"
)
def test_gpu_without_a_gpu(gimg, tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("nurse\n")
    code, _, err = gimg("pipeline", terms, "--out", tmp_path, "--gpu")
    assert code == 2
    assert "--gpu" in one_line_error(err)


def test_missing_evaluation_file_is_caught_before_any_work(gimg, tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("nurse\n")
    code, _, err = gimg("pipeline", terms, "--out", tmp_path, "--evaluation", tmp_path / "evaluation.json")
    assert code == 2
    assert "evaluation" in one_line_error(err)
    assert not (tmp_path / "Downloaded_images").exists()


def test_the_python_api_mirrors_the_cli():
    import gimg

    for name in gimg.__all__:
        assert callable(getattr(gimg, name)) or name == "__version__"
    assert {"run_download", "run_crop", "run_classify", "run_analyze", "run_pipeline", "run_evaluate"} <= set(
        gimg.__all__
    )
    assert {"draw_sample", "serve_labels", "import_labels", "run_label_report"} <= set(gimg.__all__)


def test_info_names_the_version_every_model_file_its_license_and_the_browser(gimg):
    code, out, _ = gimg("info")
    assert code == 0
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["gimg"] == __import__("gimg").__version__
    models = {label: value for label, value in lines.items() if label.startswith("model ")}
    assert len(models) == 7 and all("license: " in value for value in models.values())
    assert "gender-v1.onnx" in models["model gender net gender-v1.onnx (default model)"]
    assert "CPUExecutionProvider" in lines["onnxruntime providers"]
    assert lines["chromedriver"].startswith("/usr/bin/chromedriver: ChromeDriver")


def test_train_without_its_extra_says_what_to_install(gimg, monkeypatch, fixtures, tmp_path):
    for module in ("gimg.train", "gimg.netgrad"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the train extra (the onnx package) were not installed
    code, _, err = gimg("train", fixtures / "faces" / "labels.csv", "--out", tmp_path / "model")
    assert code == 2
    assert one_line_error(err) == ("gimg: error: gimg train needs the training extra (onnx is missing): "
                                   "pip install 'gimg[train]'")
