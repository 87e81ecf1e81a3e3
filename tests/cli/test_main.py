"""The `cmtgeo` group: version, help, and the one place errors become messages and exit codes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

from cmt_geo import __version__
from cmt_geo.errors import DatasetNotFoundError


@pytest.fixture
def failing_command() -> Iterator[str]:
    """Register a throwaway `cmtgeo boom KIND` command that raises the chosen error."""

    @click.command()
    @click.argument("kind", type=click.Choice(["cmtgeo", "bug", "interrupt"]))
    def boom(kind: str) -> None:
        if kind == "cmtgeo":
            raise DatasetNotFoundError("no tiles in '/data/vaihingen'\nunpack the archive there first")
        if kind == "bug":
            raise ZeroDivisionError("division by zero")
        raise KeyboardInterrupt

    cmtgeo.add_command(boom)
    yield "boom"
    cmtgeo.commands.pop("boom")


def test_version_from_the_console_script() -> None:
    script = Path(sys.executable).with_name("cmtgeo")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"cmtgeo {__version__}"


def test_help_lists_commands_with_summaries() -> None:
    result = CliRunner().invoke(cmtgeo, ["--help"])
    assert result.exit_code == 0
    summaries = {
        line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1]
        for line in result.output.split("Commands:")[1].splitlines()
        if line.strip()
    }
    assert summaries["info"] == "Show versions, compute devices and optional backends."
    assert summaries["vectorize"] == "Turn a class raster into class polygons."
    assert summaries["predict"].startswith("Classify rasters of any size")


def test_library_error_is_one_line_exit_1_without_traceback(failing_command: str) -> None:
    result = CliRunner().invoke(cmtgeo, [failing_command, "cmtgeo"])
    assert result.exit_code == 1
    assert result.stderr == "Error: no tiles in '/data/vaihingen' unpack the archive there first\n"
    assert result.stdout == ""


def test_verbose_adds_the_traceback(failing_command: str) -> None:
    result = CliRunner().invoke(cmtgeo, ["-v", failing_command, "cmtgeo"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Error: no tiles in")


def test_unexpected_error_is_one_line_with_a_hint(failing_command: str) -> None:
    result = CliRunner().invoke(cmtgeo, [failing_command, "bug"])
    assert result.exit_code == 1
    assert result.stderr == "Error: ZeroDivisionError: division by zero (rerun with -v for the traceback)\n"


def test_interrupt_aborts_cleanly(failing_command: str) -> None:
    result = CliRunner().invoke(cmtgeo, [failing_command, "interrupt"])
    assert result.exit_code == 1
    assert "Aborted" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [["no-such-command"], ["info", "--no-such-option"], ["-v", "-q", "info"]],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(cmtgeo, args)
    assert result.exit_code == 2
    assert "Error:" in result.stderr


def test_info_json_reports_versions() -> None:
    import json

    result = CliRunner().invoke(cmtgeo, ["info", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cmt-geo"] == __version__
    assert report["packages"]["torch"]
    assert "cpu" in report["devices"]
    assert report["scan_backends"]["cpu"][-2:] == ["torch", "ref"]
