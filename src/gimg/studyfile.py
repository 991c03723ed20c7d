"""Study files: one TOML file that sets any option by section, and the resolved record every run leaves behind."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tomli_w

from . import __version__
from .errors import GimgError, OptionError
from .layout import Layout, atomic_path
from .options import SECTIONS, Options

# Arguments a study file may give at its top level, besides its sections; paths are relative to the file.
TOP_LEVEL = ("terms", "out")
RUN_TABLE = "run"  # what a run record says about the run itself; ignored when the record is read back


def read_study(path: Path) -> dict[str, Any]:
    """Flat option values from a study file, checked against the options model; paths made absolute."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GimgError(f"study file {path} not found: pass --config a TOML file (see the README's study file)")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise GimgError(f"study file {path} is not valid TOML: {error}") from None
    base = path.resolve().parent
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key in TOP_LEVEL:
            if not isinstance(value, str):
                raise GimgError(f"study file {path}: {key} must be a path in quotes, not {value!r}")
            values[key] = base / value
        elif key in SECTIONS and isinstance(value, dict):
            values.update(_section(path, key, SECTIONS[key], value, base))
        elif key != RUN_TABLE:
            known = ", ".join([*TOP_LEVEL, *(f"[{name}]" for name in SECTIONS)])
            raise GimgError(f"study file {path}: unknown entry '{key}': use {known}")
    return values


def _section(path: Path, name: str, section: type[Options], values: dict, base: Path) -> dict[str, Any]:
    """One section's values, checked by building its options object."""
    names = [item.name for item in fields(section)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise GimgError(f"study file {path}: unknown option '{unknown[0]}' in [{name}]: choose from {', '.join(names)}")
    try:
        checked = section(**values)
    except OptionError as error:
        raise GimgError(f"study file {path}: [{name}] {error}") from None
    paths = {item.name for item in fields(section) if item.metadata["kind"] is Path}
    return {key: base / getattr(checked, key) if key in paths else getattr(checked, key) for key in values}


def record_run(out: Path, command: str, sections: dict[str, Options], terms: Path | None = None) -> Path:
    """Write OUT/runs/<time>-<command>.toml: every option as resolved, with gimg's version and the time.

    The record is itself a study file: `gimg <command> --config` on it runs the same study again.
    """
    now = datetime.now(timezone.utc)
    document: dict[str, Any] = {}
    run: dict[str, Any] = {"command": command, "gimg_version": __version__, "started": now}
    if terms is not None:
        document["terms"] = str(Path(terms).resolve())
        run["terms_sha256"] = hashlib.sha256(Path(terms).read_bytes()).hexdigest()
    document["out"] = str(Path(out).resolve())
    for name, options in sections.items():
        document[name] = {key: str(Path(value).resolve()) if isinstance(value, Path) else value
                          for key, value in vars(options).items() if value is not None}
    document[RUN_TABLE] = run
    target = Layout(out).run_record(now, command)
    with atomic_path(target) as temporary:
        temporary.write_text(tomli_w.dumps(document), encoding="utf-8")
    return target
