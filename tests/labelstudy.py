"""A small real study for the labelling tests: fixture faces through the real download, crop and classify stages.

Built once per test session on disk (a marker file says it is complete); each test copies it before writing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SHARES = {"nurse": 0.8, "electrician": 0.2, "cashier": 0.5}
PER_TERM = 12


def build_study(root: Path, fixtures: Path) -> Path:
    """The study folder under root (terms SHARES, PER_TERM images each), made through the real stages once."""
    from gimg.download import run_download
    from gimg.localengine import build_site, read_face_labels, serve_site
    from gimg.options import DownloadOptions, ExecutionOptions
    from gimg.pipeline import run_crop_classify

    out, marker = root / "out", root / "complete"
    if marker.exists():
        return out
    shutil.rmtree(root, ignore_errors=True)
    faces = fixtures / "faces"
    build_site(read_face_labels(faces), faces / "images", root / "site", SHARES, per_term=PER_TERM, seed=3)
    with serve_site(root / "site") as base_url:
        options = DownloadOptions(engine_url=base_url, limit=PER_TERM)
        run_download(list(SHARES), out, options, ExecutionOptions(workers=2))
    run_crop_classify(out, execution=ExecutionOptions(workers=2))
    marker.touch()
    return out


def copy_study(study: Path, target: Path) -> Path:
    """A private copy of the study (without any validation/ folder) to draw samples and write labels in."""
    shutil.copytree(study, target, ignore=shutil.ignore_patterns("validation"))
    return target
