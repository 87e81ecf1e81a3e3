"""`cmtgeo convert`: turn weights saved by the reference CMT-UNet's training into a checkpoint `predict` can use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..options import NameListType, output_option, overwrite_option


class NumberListType(click.ParamType):
    """Comma-separated numbers, e.g. "123.7, 116.3,103.5" -> (123.7, 116.3, 103.5)."""

    name = "x,y,z"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers, e.g. 0.4,0.5,0.5", param, ctx)


@click.command()
@click.argument("reference", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@output_option(help="Checkpoint to write (e.g. model.ckpt).")
@click.option(
    "--num-classes", type=click.IntRange(min=1), help="Classes of the model [default: read from the weights]."
)
@click.option("--classes", type=NameListType(), help="Class names in output order [default: class_0, class_1, ...].")
@click.option("--bands", type=NameListType(), help="Band names in input order [default: band_1, band_2, ...].")
@click.option("--mean", type=NumberListType(), help="Per-band mean of the training input [default: 0].")
@click.option("--std", type=NumberListType(), help="Per-band std of the training input [default: 255].")
@click.option(
    "--patch-size",
    type=click.IntRange(32, 8192),
    help="Training patch side, px: predict's default tile [default: 256].",
)
@click.option("--gsd", type=click.FloatRange(min=0, min_open=True), help="Training pixel size in metres.")
@overwrite_option
def convert(
    reference: Path,
    output: Path,
    num_classes: int | None,
    classes: tuple[str, ...] | None,
    bands: tuple[str, ...] | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
    patch_size: int | None,
    gsd: float | None,
    overwrite: bool,
) -> None:
    """Convert weights of the reference CMT-UNet (XUE-YYC/CMT-UNet) into a cmt-geo checkpoint.

    REFERENCE is a .pth file its training saved: the state dict itself or a dict holding it under "state_dict"
    or "model", keys possibly prefixed ("net.", "module."). It is read without unpickling Python objects. Every
    weight must map onto cmt_unet_base (or the ResNet variant the weights use); otherwise nothing is written and
    the unmatched keys are listed. The reference's README scales 8-bit pixels to 0-1, hence the default mean 0 and
    std 255; give --mean and --std when the training normalized otherwise.

    \b
    $ cmtgeo convert weights.pth -o model.ckpt --classes impervious,building,low_vegetation,tree,car,clutter
    $ cmtgeo predict tile.tif -o classes.tif --checkpoint model.ckpt
    """
    from cmt_geo.models import convert_reference_checkpoint, read_card

    written = convert_reference_checkpoint(
        reference,
        output,
        num_classes=num_classes,
        class_names=classes,
        bands=bands,
        mean=mean,
        std=std,
        patch_size=patch_size,
        ground_sample_distance=gsd,
        overwrite=overwrite,
    )
    card = read_card(written)
    click.echo(
        f"wrote {written}: {card.architecture}, classes {', '.join(card.class_names)}; "
        f"bands {', '.join(card.band_names)} (mean {list(card.normalization.mean)}, std {list(card.normalization.std)})"
    )
