"""Shared test fixtures: the bundled fixture files, and the read-only shared data next to the repo."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gimg.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs ../shared/data next to the repo ({SHARED_DATA} is absent)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def label_study(tmp_path_factory, fixtures) -> Path:
    """A small real study (tests/labelstudy.py), built once per session; copy it before writing in it."""
    from labelstudy import build_study

    return build_study(tmp_path_factory.getbasetemp() / "labelstudy", fixtures)


def run_cli(monkeypatch: pytest.MonkeyPatch, *args) -> int:
    """Run `gimg ARGS...` through the real entry point, in process (for module-scoped fixtures); its exit code."""
    monkeypatch.setattr(sys, "argv", ["gimg", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code or 0


@pytest.fixture
def gimg(monkeypatch, capsys):
    """Run `gimg ARGS...` through the real entry point, in process; return (exit code, stdout, stderr)."""

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["gimg", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        return exit_info.value.code or 0, captured.out, captured.err

    return run
