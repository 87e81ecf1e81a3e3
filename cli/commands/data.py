"""`cmtgeo data`: check a dataset folder, or write a synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import click

from cmt_geo.data.registry import DATASET_NAMES

from ..options import NameListType, make_progress, overwrite_option, progress_option

_MAX_SIZE = 8192  # cmt_geo.data.synthetic.MAX_SIZE, repeated here so that --help loads no raster library


@click.group()
def data() -> None:
    """Check dataset folders and write synthetic datasets."""


@data.command()
@click.option("--dataset", type=click.Choice(DATASET_NAMES), required=True, help="Which dataset the folder holds.")
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    help="With --dataset raster: the class raster, a folder of class rasters named like the images, or a vector "
    "file of class polygons.",
)
@click.option(
    "--labels-kind",
    type=click.Choice(["auto", "full", "eroded"]),
    default="auto",
    show_default=True,
    help="With vaihingen / potsdam: which labels the splits use (auto: eroded for test, full for train).",
)
@click.option(
    "--classes",
    type=NameListType(),
    help="With --dataset raster: class names in index order, comma-separated; label values are checked against "
    "them (without it, the values found are counted).",
)
@click.option("--class-column", default="class", show_default=True, help="With vector labels: the class attribute.")
@click.option(
    "--label-nodata",
    type=click.Choice(["class", "ignore"]),
    default="class",
    show_default=True,
    help="With --dataset raster: a label no-data value that is also a class index is kept as that class, or ignored.",
)
@progress_option
@click.argument("root", type=click.Path(exists=True, path_type=Path))
def check(
    dataset: str,
    root: Path,
    labels: Path | None,
    labels_kind: str,
    classes: tuple[str, ...] | None,
    class_column: str,
    label_nodata: str,
    progress_kind: str,
) -> None:
    """Verify a dataset folder and list every problem; exit 1 if any is real.

    Every block of every image and label is decoded, so truncated files are found here. A folder with only some
    official tiles is valid (a warning names the missing ones). Real problems are unreadable files, an image
    without its label or the reverse, size or grid mismatches, unknown label colours or values and wrong or
    differing band counts. For your own rasters (--dataset raster), ROOT is an image, a folder of images, or a
    folder holding images/ and labels/.

    \b
    $ cmtgeo data check --dataset vaihingen ~/data/vaihingen
    $ cmtgeo data check --dataset raster ~/data/farm/images --labels ~/data/farm/labels --classes soil,crop
    """
    from cmt_geo.data.check import CheckOptions, check_dataset

    options = CheckOptions(
        labels=labels,
        labels_kind=labels_kind,  # type: ignore[arg-type]
        classes=classes or None,
        class_column=class_column,
        label_nodata=label_nodata,  # type: ignore[arg-type]
    )
    report = check_dataset(dataset, root, options, make_progress(progress_kind))
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
@click.option(
    "--size",
    type=click.IntRange(32, _MAX_SIZE),
    default=512,
    show_default=True,
    help=f"Tile height and width, px (32..{_MAX_SIZE}).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    show_default=True,
    help="The same seed writes the same data.",
)
@click.option(
    "--layout",
    type=click.Choice(DATASET_NAMES),
    default="raster",
    show_default=True,
    help="Folder layout: raster (images/ + labels/ GeoTIFFs) or a benchmark's.",
)
@click.option("--tiles", type=click.IntRange(2, 200), default=6, show_default=True, help="Tiles in a benchmark layout.")
@overwrite_option
@progress_option
def synthetic(
    out_dir: Path, size: int, seed: int, layout: str, tiles: int, overwrite: bool, progress_kind: str
) -> None:
    """Write a synthetic aerial dataset: buildings, shadows, roads, trees, grass, cars and clutter.

    OUT_DIR appears only when complete. --overwrite replaces only a synthetic dataset cmt-geo wrote there before.

    \b
    $ cmtgeo data synthetic demo --size 1024 --layout vaihingen
    """
    from cmt_geo.data.synthetic import write_synthetic

    written = write_synthetic(
        out_dir,
        layout,  # type: ignore[arg-type]
        size=size,
        seed=seed,
        tiles=tiles,
        overwrite=overwrite,
        progress=make_progress(progress_kind),
    )
    click.echo(f"wrote a synthetic {layout} dataset to {written}")
