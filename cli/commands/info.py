"""`cmtgeo info`: report versions, devices and optional backends, or a checkpoint's card and band mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cmt_geo.environment import environment_report


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--input",
    "raster",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With CHECKPOINT: also show which bands of this raster predict would feed the model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info(checkpoint: Path | None, raster: Path | None, as_json: bool) -> None:
    """Show versions, compute devices and optional backends.

    With CHECKPOINT, show its model card instead (classes, colours, bands, patch size), read from the file's
    header alone; with --input, also the input bands predict would use for each model band.

    \b
    $ cmtgeo info --json
    $ cmtgeo info model.ckpt --input ortho.tif
    """
    if checkpoint is None:
        if raster is not None:
            raise click.UsageError("--input needs a CHECKPOINT: cmtgeo info model.ckpt --input ortho.tif")
        report = environment_report()
    else:
        report = _checkpoint_report(checkpoint, raster)
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for name, item in value.items():
                click.echo(f"  {name}: {_text(item)}")
        else:
            click.echo(f"{key}: {_text(value)}")


def _checkpoint_report(checkpoint: Path, raster: Path | None) -> dict[str, Any]:
    """The card of `checkpoint` and, for a `raster`, the band mapping predict would use (or why there is none).

    The mapping is {"model_bands", "input_bands" (1-based, in model order, None when predict would refuse),
    "input_descriptions" (one per raster band), "problem" (the refusal's message, else None)}.
    """
    from cmt_geo.card import read_card

    card = read_card(checkpoint)
    report: dict[str, Any] = {"checkpoint": str(checkpoint), "card": json.loads(card.to_json())}
    if raster is None:
        return report
    from cmt_geo.errors import CmtGeoError
    from cmt_geo.io.raster import input_bands, open_raster

    with open_raster(raster) as src:
        descriptions = [description or "" for description in src.descriptions]
        try:
            chosen: list[int] | None = input_bands(src, card.band_names, None)
            problem = None
        except CmtGeoError as error:
            chosen, problem = None, " ".join(str(error).split())
    report["bands"] = {
        "model_bands": list(card.band_names),
        "input_bands": chosen,
        "input_descriptions": descriptions,
        "problem": problem,
    }
    return report


def _text(value: object) -> str:
    if value is None:
        return "not installed"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
