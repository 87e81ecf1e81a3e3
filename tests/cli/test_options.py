"""The shared options, exercised through a command that stacks them as real commands do."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from cmt_geo_cli.options import (
    device_option,
    make_progress,
    output_option,
    overwrite_option,
    progress_option,
)

from cmt_geo.errors import ConfigError
from cmt_geo.progress import JsonLinesProgress, NullProgress, TerminalProgress


@click.command()
@output_option()
@overwrite_option
@device_option
@progress_option
def echo_options(output: Path, overwrite: bool, device: str, progress_kind: str) -> None:
    click.echo(f"{output}|{overwrite}|{device}|{type(make_progress(progress_kind)).__name__}")


def test_defaults() -> None:
    result = CliRunner().invoke(echo_options, ["-o", "out.tif"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "out.tif|False|auto|TerminalProgress"


@pytest.mark.parametrize(("device", "expected"), [("CPU", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1")])
def test_device_is_normalized(device: str, expected: str) -> None:
    result = CliRunner().invoke(echo_options, ["-o", "x", "--device", device, "--overwrite", "--progress", "json"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"x|True|{expected}|JsonLinesProgress"


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu"])
def test_bad_device_is_a_usage_error(device: str) -> None:
    result = CliRunner().invoke(echo_options, ["-o", "x", "--device", device])
    assert result.exit_code == 2
    assert "use auto, cpu, mps, cuda or cuda:N" in result.stderr


def test_output_is_required() -> None:
    result = CliRunner().invoke(echo_options, [])
    assert result.exit_code == 2
    assert "--output" in result.stderr


@pytest.mark.parametrize(
    ("kind", "cls"), [("bar", TerminalProgress), ("json", JsonLinesProgress), ("none", NullProgress)]
)
def test_make_progress(kind: str, cls: type) -> None:
    assert isinstance(make_progress(kind), cls)


def test_make_progress_rejects_unknown_kinds() -> None:
    with pytest.raises(ConfigError, match="use bar, json or none"):
        make_progress("fancy")
