"""`cmtgeo data`: check a dataset folder, or write a synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import overwrite_option

_CHECKABLE = ("vaihingen", "potsdam", "uavid", "loveda", "raster")
_LAYOUTS = ("raster", "vaihingen", "potsdam", "uavid", "loveda")


@click.group()
def data() -> None:
    """Check dataset folders and write synthetic datasets."""


@data.command()
@click.option("--dataset", type=click.Choice(_CHECKABLE), required=True, help="Which dataset the folder holds.")
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    help="With --dataset raster: the class raster, or folder of class rasters named like the images.",
)
@click.argument("root", type=click.Path(path_type=Path))
def check(dataset: str, root: Path, labels: Path | None) -> None:
    """Verify a dataset folder and list every problem; exit 1 if any is real.

    A folder with only some official tiles is valid (a warning names the missing ones). Real problems are
    unreadable files, an image without its label or the reverse, size or grid mismatches, unknown label colours
    and wrong band counts. For your own rasters (--dataset raster), ROOT is an image or a folder of images.

    \b
    $ cmtgeo data check --dataset vaihingen ~/data/vaihingen
    $ cmtgeo data check --dataset raster ~/data/farm/images --labels ~/data/farm/labels
    """
    from cmt_geo.data.check import check_dataset

    report = check_dataset(dataset, root, labels)
    for problem in report.problems:
        level = "error" if problem.fatal else "warning"
        click.echo(f"{level}: {problem.path}: {problem.message}", err=True)
    if not report.ok:
        errors = sum(problem.fatal for problem in report.problems)
        raise click.ClickException(f"{errors} problem(s) in {root}; fix the files listed above and check again")
    click.echo(f"{dataset} at {root}: OK")
    click.echo("tiles per split: " + ", ".join(f"{s} {n}" for s, n in sorted(report.tiles_per_split.items())))
    if not report.pixels_per_class:
        return
    total = sum(report.pixels_per_class.values()) or 1
    click.echo("pixels per class:")
    for name, count in report.pixels_per_class.items():
        click.echo(f"  {name}: {count} ({count / total:.1%})")


@data.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--size", type=click.IntRange(min=32), default=512, show_default=True, help="Tile height and width, px.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed writes the same dataset.")
@click.option("--layout", type=click.Choice(_LAYOUTS), default="raster", show_default=True, help="Folder layout.")
@click.option("--tiles", type=click.IntRange(min=2), default=6, show_default=True, help="Tiles in a benchmark layout.")
@overwrite_option
def synthetic(out_dir: Path, size: int, seed: int, layout: str, tiles: int, overwrite: bool) -> None:
    """Write a synthetic aerial dataset: buildings, shadows, roads, trees, grass, cars and clutter.

    \b
    $ cmtgeo data synthetic demo --size 1024 --layout vaihingen
    """
    from cmt_geo.data.synthetic import write_synthetic

    written = write_synthetic(out_dir, layout, size=size, seed=seed, tiles=tiles, overwrite=overwrite)  # type: ignore[arg-type]
    click.echo(f"wrote a synthetic {layout} dataset to {written}")
