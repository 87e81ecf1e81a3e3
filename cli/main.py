"""The `cmtgeo` click group: global options, logging, and the one place errors become exit codes.

Exit codes: 0 success, 1 an error (one line on stderr; the traceback only with -v), 2 a usage error.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import click

from cmt_geo import __version__
from cmt_geo.errors import CmtGeoError
from cmt_geo.io.outputs import Terminated, terminate_on_sigterm

from .commands.convert import convert
from .commands.data import data
from .commands.evaluate import evaluate
from .commands.info import info
from .commands.predict import predict
from .commands.train import train
from .commands.vectorize import vectorize

_VERBOSE_KEY = "cmtgeo.verbose"


def _one_line(text: str) -> str:
    return " ".join(text.split())


class CmtGeoGroup(click.Group):
    """A click group that turns every error a command raises into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Abort() from None
        except Exception as exc:
            verbose = bool(ctx.meta.get(_VERBOSE_KEY))
            if verbose:
                traceback.print_exc(file=sys.stderr)
            if isinstance(exc, CmtGeoError):
                message = _one_line(str(exc)) or type(exc).__name__
            else:
                message = _one_line(f"{type(exc).__name__}: {exc}")
                if not verbose:
                    message += " (rerun with -v for the traceback)"
            raise click.ClickException(message) from None


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if verbose else "%(message)s"))
    root = logging.getLogger("cmt_geo")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@click.group(cls=CmtGeoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cmtgeo", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log details, and show tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors.")
@click.pass_context
def cmtgeo(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """CMT-UNet semantic segmentation for aerial, UAV and satellite rasters.

    \b
    $ cmtgeo info
    """
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet cannot be used together; pick one")
    ctx.meta[_VERBOSE_KEY] = verbose
    _configure_logging(verbose, quiet)


cmtgeo.add_command(convert)
cmtgeo.add_command(data)
cmtgeo.add_command(evaluate)
cmtgeo.add_command(info)
cmtgeo.add_command(predict)
cmtgeo.add_command(train)
cmtgeo.add_command(vectorize)


def main() -> None:
    """Console-script entry point: SIGTERM stops a command as Ctrl-C does, cleaning up partial outputs."""
    try:
        with terminate_on_sigterm():
            cmtgeo(prog_name="cmtgeo")
    except Terminated:
        click.echo("Terminated; partial outputs were removed.", err=True)
        sys.exit(143)
