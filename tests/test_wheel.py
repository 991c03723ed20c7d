"""gimg as a user gets it: a wheel installed in a fresh venv, run from an empty folder outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from gimg.localengine import build_site, read_face_labels, serve_site

REPO = Path(__file__).resolve().parents[1]
MAX_WHEEL_MB = 3
# A user's environment: no PYTHONPATH (a checkout's src/ on it would make pip see gimg as already installed).
USER_ENVIRONMENT = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "GIMG_DEBUG")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv that holds only gimg's wheel; its dependencies come from this test's environment (no network)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    root / "dist", source], check=True, capture_output=True, env=USER_ENVIRONMENT)
    [wheel] = (root / "dist").glob("gimg-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, env=USER_ENVIRONMENT)
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
                   check=True, capture_output=True, env=USER_ENVIRONMENT)
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site_packages = subprocess.run([venv / "bin" / "python", "-c", where], check=True, capture_output=True,
                                   text=True, env=USER_ENVIRONMENT).stdout.strip()
    # Lines of a .pth file join sys.path after the venv's own site-packages; .pth files found there are not run,
    # so this environment's editable gimg stays out and only its dependencies are seen.
    Path(site_packages, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv, wheel


def run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([venv / "bin" / "gimg", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=USER_ENVIRONMENT)


def test_the_wheel_is_small_and_ships_no_non_commercial_faces(installed):
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert wheel.stat().st_size < MAX_WHEEL_MB * 2**20
    assert "gimg/data/professions.csv" in names and "gimg/data/demo_faces/labels.csv" in names
    assert not [name for name in names if "utk" in name.lower()]


def test_the_installed_gimg_is_the_wheel(installed, tmp_path):
    venv, _ = installed
    found = subprocess.run([venv / "bin" / "python", "-c", "import gimg; print(gimg.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True, env=USER_ENVIRONMENT).stdout
    assert found.startswith(str(venv)) and str(REPO) not in found


def test_demo_runs_from_an_empty_folder(installed, tmp_path):
    venv, _ = installed
    done = run(venv, tmp_path, "demo", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "demo_out" / "analysis" / "report.html").is_file()
    summary = pd.read_csv(tmp_path / "demo_out" / "analysis" / "summary.csv")
    assert summary.census_share_women.notna().all() and (summary.faces >= 10).all()
    analysis = json.loads((tmp_path / "demo_out" / "analysis" / "analysis.json").read_text())
    assert analysis["evaluation"]["domain"] == "study", "the demo labels a sample and corrects with its rates"
    assert analysis["evaluation"]["study"]["agreement"]["raters"] == 3
    assert "this study's own faces" in (tmp_path / "demo_out" / "analysis" / "report.html").read_text()


def test_pipeline_uses_the_shipped_census(installed, tmp_path, fixtures):
    venv, _ = installed
    site = tmp_path / "site"
    faces = fixtures / "faces"
    build_site(read_face_labels(faces), faces / "images", site, {"nurse": 0.8, "plumber": 0.2}, per_term=6)
    work = tmp_path / "empty"
    work.mkdir()
    (work / "terms.txt").write_text("nurse\nplumber\n")
    with serve_site(site) as url:
        done = run(venv, work, "pipeline", "terms.txt", "--engine-url", url, "--limit", "6", "--min-faces", "3")
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(work / "analysis" / "summary.csv").set_index("term")
    assert summary.loc["nurse", "census_share_women"] == 0.879
    assert "shipped with gimg" in (work / "analysis" / "report.html").read_text()
