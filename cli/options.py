"""Options shared by several `cmtgeo` commands, defined once and stacked as decorators."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cmt_geo.errors import ConfigError
from cmt_geo.progress import JsonLinesProgress, NullProgress, Progress, TerminalProgress

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def output_option(required: bool = True, help: str = "Output path.") -> Callable[[Any], Any]:
    """`-o/--output PATH`."""
    return click.option("-o", "--output", type=click.Path(path_type=Path), required=required, help=help)


def config_options(config_help: str, set_help: str) -> Callable[[Any], Any]:
    """`--config FILE` (the parameter `config_path`) and repeatable `--set SECTION.KEY=VALUE` (`overrides`)."""
    config = click.option(
        "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=config_help
    )
    overrides = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=set_help)
    return lambda command: config(overrides(command))


overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace outputs that already exist (never done silently)."
)


class DeviceType(click.ParamType):
    """A torch device name: auto, cpu, mps, cuda or cuda:N."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower()
        if not _DEVICE_PATTERN.match(text):
            self.fail(f"{value!r} is not a device; use auto, cpu, mps, cuda or cuda:N (e.g. cuda:0)", param, ctx)
        return text


class NameListType(click.ParamType):
    """Comma-separated names, e.g. "soil, crop,hedge" -> ("soil", "crop", "hedge")."""

    name = "a,b,c"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        return tuple(name.strip() for name in str(value).split(","))


device_option = click.option(
    "--device",
    type=DeviceType(),
    default="auto",
    show_default=True,
    help="Where to compute: auto (CUDA, else MPS, else CPU), cpu, mps, cuda or cuda:N.",
)


def tiling_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--tile-size`, `--overlap`, `--batch-size` and `--tta`: how a raster is cut into windows and predicted."""
    for option in reversed(
        [
            click.option(
                "--tile-size", type=click.IntRange(32, 8192), help="Window side, px [default: the training patch size]."
            ),
            click.option(
                "--overlap", type=click.IntRange(min=0), help="Pixels shared by neighbouring windows [default: tile/4]."
            ),
            click.option(
                "--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Windows per forward."
            ),
            click.option(
                "--tta",
                type=click.Choice(["none", "flip", "d4"]),
                default="none",
                show_default=True,
                help="Test-time augmentation: none, flip (4 flips) or d4 (8 flips and rotations).",
            ),
        ]
    ):
        command = option(command)
    return command


progress_option = click.option(
    "--progress",
    "progress_kind",
    type=click.Choice(["bar", "json", "none"]),
    default="bar",
    show_default=True,
    help="Progress display: a bar on stderr, JSON lines on stdout (for scripts and QGIS), or nothing.",
)


def make_progress(kind: str) -> Progress:
    """The progress reporter for a `--progress` choice: bar, json or none."""
    if kind == "bar":
        return TerminalProgress()
    if kind == "json":
        return JsonLinesProgress()
    if kind == "none":
        return NullProgress()
    raise ConfigError(f"unknown progress display {kind!r}; use bar, json or none")
