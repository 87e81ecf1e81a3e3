"""`cmtgeo vectorize`: write the class polygons of a class raster (GeoPackage, Shapefile, GeoJSON, GeoParquet)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click

from ..options import NameListType, make_progress, output_option, overwrite_option, progress_option


class SimplifyType(click.ParamType):
    """`--simplify`: auto, none, or a tolerance in CRS units."""

    name = "auto|none|TOLERANCE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Literal["auto"] | float | None:
        if value is None or isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if text in ("auto", "none"):
            return None if text == "none" else "auto"
        try:
            tolerance = float(text)
        except ValueError:
            tolerance = -1.0
        if not tolerance >= 0:
            self.fail(f"{value!r} is not a simplification; use auto, none or a tolerance >= 0 in CRS units", param, ctx)
        return tolerance


@click.command()
@click.argument("class_raster", type=click.Path(path_type=Path))
@output_option(help="Vector file to write: .gpkg (GeoPackage 1.3), .shp, .geojson or .parquet (GeoParquet).")
@click.option(
    "--simplify",
    type=SimplifyType(),
    default="auto",
    show_default=True,
    help="Simplify edges, keeping neighbours' shared edges: auto (1.5 pixels), none, or a tolerance in CRS units.",
)
@click.option(
    "--min-area",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Merge polygons smaller than this many m² into the neighbour they share the longest edge with.",
)
@click.option(
    "--classes",
    type=NameListType(),
    help="Class names in id order, comma-separated (default: the names stored in CLASS_RASTER, else class_<id>).",
)
@overwrite_option
@progress_option
def vectorize(
    class_raster: Path,
    output: Path,
    simplify: Literal["auto"] | float | None,
    min_area: float,
    classes: tuple[str, ...] | None,
    overwrite: bool,
    progress_kind: str,
) -> None:
    """Turn a class raster into class polygons.

    CLASS_RASTER holds one band of class ids (the class raster cmtgeo predict writes; 255 and the raster's no-data
    get no polygons). Regions are polygonized block by block and merged across block borders. The polygons carry
    class_id, class_name, area_m2 and perimeter_m (metres even for a geographic CRS) and are in the raster's CRS.

    \b
    $ cmtgeo vectorize classes.tif -o classes.gpkg --min-area 4
    """
    from cmt_geo.vector import vectorize as vectorize_raster

    written = vectorize_raster(
        class_raster,
        output,
        simplify=simplify,
        min_area=min_area,
        class_names=classes or None,
        overwrite=overwrite,
        progress=make_progress(progress_kind),
    )
    click.echo(f"wrote {written}")
