"""The train, explain and compare commands, added to gimg's CLI group and run through its real entry point."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("onnx", reason="needs the training extra: pip install -e '.[train]'")

import pandas as pd  # noqa: E402

from gimg import cli as cli_module  # noqa: E402
from gimg.modelcli import compare_command, explain_command, load_backend, train_command  # noqa: E402
from gimg.errors import GimgError  # noqa: E402


@pytest.fixture
def gimg(monkeypatch, capsys):
    """`gimg ARGS...` through gimg's main(), with the three commands added to its group for this test."""
    for command in (train_command, explain_command, compare_command):
        monkeypatch.setitem(cli_module.cli.commands, command.name, command)

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["gimg", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            cli_module.main()
        captured = capsys.readouterr()
        return exit_info.value.code or 0, captured.out, captured.err

    return run


def test_train_then_classify_compare_and_explain_with_the_model(gimg, fixtures, tmp_path):
    labels = fixtures / "faces" / "labels.csv"
    model = tmp_path / "model"
    code, out, err = gimg("train", labels, "--out", model, "--epochs", "2", "--patience", "1", "--workers", "1")
    assert code == 0, err
    assert "train: epoch 1:" in out and f"--model {model}" in out
    code, out, err = gimg("compare", labels, "--model", "onnx", "--model", model, "--out", tmp_path / "cmp",
                          "--workers", "1")
    assert code == 0, err
    assert out.count("ms/face") == 2
    summary = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert summary.model.tolist() == ["onnx", str(model)] and (summary.faces >= 45).all()
    face = tmp_path / "cmp" / "Cropped_faces" / "evaluation" / "00001_0.jpg"
    code, out, err = gimg("explain", face, "--model", model, "--method", "gradient")
    assert code == 0, err
    assert (face.parent / "00001_0.heatmap.png").is_file()


def test_bad_input_is_one_line_and_exit_2(gimg, fixtures, tmp_path):
    code, _, err = gimg("explain", fixtures / "faces" / "labels.csv", "--model", tmp_path)
    assert code == 2 and "gimg train" in err and "Traceback" not in err
    code, _, err = gimg("train", tmp_path / "missing.csv", "--out", tmp_path / "m")
    assert code == 2 and "not found" in err
    code, out, err = gimg("explain", fixtures / "faces" / "labels.csv")
    assert code == 1 and "failed" in out
    code, _, err = gimg("explain", fixtures / "faces" / "labels.csv", "--method", "gradient")
    assert code == 2 and "no gradients" in err


def test_every_new_command_has_help_with_an_example(gimg):
    for command in ("train", "explain", "compare"):
        code, out, _ = gimg(command, "--help")
        assert code == 0 and "Example: gimg" in out


def test_a_model_name_that_is_neither_built_in_nor_a_model_dir(tmp_path):
    with pytest.raises(GimgError, match="onnx, caffe or a folder"):
        load_backend(str(tmp_path))
    assert load_backend("onnx").name == "onnx:gender-v1"
