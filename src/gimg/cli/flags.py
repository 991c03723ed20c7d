"""What every command shares: flags built from the options model, --config, --out, logging, and how outcomes are told."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import Field, fields
from pathlib import Path

import click

from ..errors import GimgError
from ..options import Options, StudyConfig, flag
from ..outcome import TermOutcome

log = logging.getLogger("gimg")


class _Console(logging.Handler):
    """Progress and results to standard output, warnings and errors to standard error, one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        prefix = "warning: " if record.levelno == logging.WARNING else ""
        stream.write(f"{prefix}{record.getMessage()}\n")
        stream.flush()


def configure_logging(level: int) -> None:
    """Send gimg's log to the console at level (INFO by default, DEBUG with -v, ERROR with -q)."""
    logger = logging.getLogger("gimg")
    if not any(isinstance(handler, _Console) for handler in logger.handlers):
        logger.addHandler(_Console())
    logger.setLevel(level)
    logger.propagate = False


def _compose(*decorators: Callable) -> Callable:
    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def _click_type(item: Field) -> click.ParamType | None:
    meta = item.metadata
    if meta["multiple"]:
        return None  # a comma-separated list, each value checked by the options object
    if meta["choices"] is not None:
        return click.Choice(meta["choices"])
    kind = meta["kind"]
    if kind is Path:
        return click.Path(path_type=Path)
    if kind in (int, float) and (meta["low"], meta["high"]) == (None, None):
        return click.INT if kind is int else click.FLOAT
    if kind is int:
        return click.IntRange(min=meta["low"], max=meta["high"])
    if kind is float:
        return click.FloatRange(min=meta["low"], max=meta["high"])
    return None


def click_option(item: Field) -> Callable:
    """The flag of one options field: its type, default, help and GIMG_<NAME> environment variable."""
    name = flag(item)
    meta = item.metadata
    declaration = f"{name}/--no-{name[2:]}" if meta["kind"] is bool else name
    choices = f" [one or more of: {','.join(meta['choices'])}]" if meta["multiple"] and meta["choices"] else ""
    return click.option(
        declaration, item.name, type=_click_type(item), default=item.default, show_default=item.default is not None,
        help=meta["help"] + choices, envvar=f"GIMG_{item.name.upper()}",
    )


def options_of(*sections: type[Options], skip: tuple[str, ...] = ()) -> Callable:
    """Every field of the given options classes (but those named in skip) as click options."""
    return _compose(*(click_option(item) for section in sections for item in fields(section) if item.name not in skip))


def fields_of(section: type[Options], names: tuple[str, ...]) -> Callable:
    """Some fields of an options class as click options."""
    return _compose(*(click_option(item) for item in fields(section) if item.name in names))


def _load_config(context: click.Context, _: click.Parameter, value: Path | None) -> None:
    """A study file's values become the defaults: GIMG_* variables and flags override them."""
    if value is not None:
        from ..studyfile import read_study

        context.default_map = {**(context.default_map or {}), **read_study(value)}


config_option = click.option(
    "--config", type=click.Path(dir_okay=False, path_type=Path), is_eager=True, expose_value=False,
    callback=_load_config, help="Study file (TOML) that sets any option; GIMG_* variables and flags override it.",
)


def config_for(names: tuple[str, ...]) -> Callable:
    """--config that takes only these options (and --out) from a study file, so that a name a command uses for
    something else (label sample's --seed) is not set by another section's option of that name."""

    def load(context: click.Context, _: click.Parameter, value: Path | None) -> None:
        if value is not None:
            from ..studyfile import read_study

            chosen = {name: value for name, value in read_study(value).items() if name in {*names, "out"}}
            context.default_map = {**(context.default_map or {}), **chosen}

    return click.option("--config", type=click.Path(dir_okay=False, path_type=Path), is_eager=True,
                        expose_value=False, callback=load,
                        help=f"Study file (TOML) whose [analyze] {', '.join(names)} apply; flags override them.")


terms_argument = click.argument("terms", required=False, type=click.Path(dir_okay=False, path_type=Path))


def out_option(default: str, help: str) -> Callable:
    return click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path(default),
                        show_default=True, envvar="GIMG_OUT", help=help)


study_out = out_option(".", "Folder that holds Downloaded_images/, Cropped_faces/, Datasets/ and analysis/.")


def need_terms(terms: Path | None) -> Path:
    """The terms file given as TERMS or by the study file."""
    if terms is None:
        raise GimgError("no terms: give TERMS (a text file, one search term per line) or `terms` in --config")
    return terms


def report(stage: str, outcomes: list[TermOutcome]) -> list[TermOutcome]:
    """Log one line per term (skipped ones with -v) and a summary line; return the failures."""
    for outcome in outcomes:
        line = f"{stage}: {outcome.term}: {outcome.status}{': ' + outcome.detail if outcome.detail else ''}"
        levels = {"done": logging.INFO, "skipped": logging.DEBUG, "busy": logging.INFO}
        log.log(levels.get(outcome.status, logging.ERROR), line)
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "busy", "failed")}
    busy = f", {counts['busy']} in progress elsewhere" if counts["busy"] else ""  # not a failure: exit 0
    log.info(f"{stage}: {counts['done']} done, {counts['skipped']} already done{busy}, {counts['failed']} failed")
    return [outcome for outcome in outcomes if outcome.status == "failed"]


def finish(failures: list[TermOutcome]) -> None:
    """Exit 1 when some terms failed, after the others went on."""
    if failures:
        log.error(f"gimg: {len(failures)} term(s) failed (see above); rerun the same command to resume")
        sys.exit(1)


def record(command: str, out: Path, config: StudyConfig, sections: tuple[str, ...], terms: Path | None = None):
    """Leave the resolved options of this run in OUT/runs/."""
    from ..studyfile import record_run

    record_run(out, command, {name: getattr(config, name) for name in sections}, terms)
