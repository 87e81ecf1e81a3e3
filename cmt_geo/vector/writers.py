"""Write polygon layers by file suffix (GeoPackage 1.3, Shapefile, GeoJSON, GeoParquet), atomically.

Every output goes through `cmt_geo.io.outputs.atomic_output`. A shapefile is a set of files: it is written under
the staging name, its sidecars (.shx, .dbf, .prj, .cpg) are renamed into place first and the .shp last, so an
interrupted run leaves no .shp (a shapefile without its .shp does not open) and a finished one is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd

from cmt_geo.errors import ConfigError, OutputExistsError
from cmt_geo.io.outputs import atomic_output

#: Output suffix -> OGR driver (None: GeoParquet, written by geopandas with pyarrow).
VECTOR_DRIVERS: dict[str, str | None] = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".parquet": None,
}
#: Files beside a .shp that belong to its set: written by GDAL, or spatial indexes of the old set on overwrite.
SHAPEFILE_SIDECARS = (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")
#: Shapefile field names hold at most 10 characters.
SHAPEFILE_FIELD_NAMES = {"perimeter_m": "perim_m"}


def vector_driver(path: str | os.PathLike[str]) -> str | None:
    """The OGR driver for an output path by its suffix (None for GeoParquet).

    Raises:
        ConfigError: the suffix is not one cmt-geo writes.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in VECTOR_DRIVERS:
        raise ConfigError(
            f"cannot write polygons to {os.fspath(path)!r}: unknown suffix {suffix!r}; use one of "
            f"{', '.join(VECTOR_DRIVERS)}"
        )
    return VECTOR_DRIVERS[suffix]


def refuse_existing(path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse an output that exists (for a shapefile, any file of its set) unless `overwrite`.

    Raises:
        OutputExistsError: a file exists and `overwrite` is False.
    """
    destination = Path(path).expanduser()
    for existing in (destination, *_sidecars(destination)):
        if existing.exists() and not overwrite:
            raise OutputExistsError(
                f"{existing} exists; pass --overwrite (overwrite=True) to replace it, or choose another name"
            )


def write_vector(frame: gpd.GeoDataFrame, output: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a polygon layer, the format chosen by the suffix: .gpkg (GeoPackage 1.3), .shp, .geojson, .parquet.

    The file (for .shp, the set) appears complete or not at all. In a shapefile `perimeter_m` is named `perim_m`
    (field names hold 10 characters).

    Args:
        frame: the polygons and their attributes, with a CRS.
        output: the file to write; its stem names the layer.
        overwrite: replace an existing output (for .shp, the whole set).

    Returns:
        The output path.

    Raises:
        ConfigError: an unknown suffix.
        OutputExistsError: the output exists and `overwrite` is False.
        OutputNotWritableError: the output's folder cannot be written.
    """
    driver = vector_driver(output)
    destination = Path(output).expanduser()
    refuse_existing(destination, overwrite)
    with atomic_output(destination, overwrite=overwrite) as staging:
        staging.unlink()  # the writers create the file themselves
        if driver is None:
            frame.to_parquet(staging)
        elif driver == "ESRI Shapefile":
            _write_shapefile(frame.rename(columns=SHAPEFILE_FIELD_NAMES), staging, destination)
        else:
            options = {"VERSION": "1.3"} if driver == "GPKG" else {}
            frame.to_file(staging, driver=driver, layer=destination.stem, engine="pyogrio", dataset_options=options)
    return destination


def _sidecars(shp: Path) -> list[Path]:
    """The sidecar files of a shapefile path (none for other formats)."""
    if shp.suffix.lower() != ".shp":
        return []
    return [shp.with_suffix(suffix) for suffix in SHAPEFILE_SIDECARS]


def _write_shapefile(frame: gpd.GeoDataFrame, staging: Path, destination: Path) -> None:
    """Write the set under the staging name, then move its sidecars into place; `atomic_output` moves the .shp."""
    try:
        frame.to_file(staging, driver="ESRI Shapefile", engine="pyogrio")
        destination.unlink(missing_ok=True)  # an old .shp never pairs with new sidecars, even if killed below
        for old in _sidecars(destination):
            old.unlink(missing_ok=True)
        for written in _sidecars(staging):
            if written.exists():
                os.replace(written, destination.with_suffix(written.suffix))
    except BaseException:
        for written in _sidecars(staging):
            written.unlink(missing_ok=True)
        raise
