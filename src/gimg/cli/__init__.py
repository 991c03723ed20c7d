"""The gimg command line: flags built from the options model, the library called, the outcome told through logging.

One module per family of commands (study, labels, classifier); flags.py holds what they share.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from .. import __version__
from ..errors import GimgError
from .classifier import evaluate, explain, train
from .flags import configure_logging, log
from .labels import label
from .study import analyze, classify, crop, demo, download, pipeline, search

@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "GIMG"})
@click.version_option(__version__, prog_name="gimg")
@click.option("-v", "--verbose", is_flag=True, help="Also log retries, host pauses and the work skipped.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
def cli(verbose: bool, quiet: bool) -> None:
    """Measure how image search portrays occupations by gender, and compare with the census.

    Every option can also be set in a study file (--config study.toml) or as GIMG_<OPTION> in the environment.

    Example: gimg pipeline professions.txt --limit 100
    """
    configure_logging(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)


@cli.command()
def info() -> None:
    """Print gimg's version, its model files and their licenses, the ONNX runtime's providers and the browser.

    Example: gimg info
    """
    from ..info import describe

    for name, value in describe():
        click.echo(f"{name}: {value}")


for subcommand in (download, search, crop, classify, analyze, pipeline, demo, evaluate, label, info, train, explain):
    cli.add_command(subcommand)


def main() -> None:
    """Entry point: one line and exit 2 for anything the user can fix; no tracebacks."""
    configure_logging(logging.INFO)
    try:
        sys.exit(cli.main(standalone_mode=False))
    except click.ClickException as error:
        log.error(f"gimg: error: {error.format_message()}")
        sys.exit(2)
    except (GimgError, ValueError) as error:
        log.error(f"gimg: error: {error}")
        sys.exit(2)
    except (KeyboardInterrupt, click.Abort):
        log.error("gimg: interrupted; finished work is kept, rerun the same command to resume")
        sys.exit(130)
    except Exception as error:  # last resort: a user must never see a traceback unless they ask for it
        if os.environ.get("GIMG_DEBUG"):
            raise
        log.error(f"gimg: internal error: {type(error).__name__}: {error} (set GIMG_DEBUG=1 for the traceback)")
        sys.exit(1)
