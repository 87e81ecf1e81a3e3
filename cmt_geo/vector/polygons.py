"""Class raster -> class polygons: polygonize by blocks, merge across borders, drop slivers, simplify, measure.

`polygonize` returns a GeoDataFrame (notebooks); `vectorize` writes it to a file. The polygons form a coverage
in the raster's CRS: neighbours share edges exactly, with no gaps or overlaps, before and after simplification.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.io import DatasetReader
from rasterio.windows import Window

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.errors import ConfigError, InvalidRasterError
from cmt_geo.io.class_raster import read_class_names
from cmt_geo.io.raster import open_raster
from cmt_geo.progress import NullProgress, Progress, check_canceled
from cmt_geo.vector.blocks import polygonize_blocks, square_windows
from cmt_geo.vector.coverage import Geometries, merge_small_polygons
from cmt_geo.vector.measure import area_perimeter_m, local_equal_area
from cmt_geo.vector.writers import refuse_existing, vector_driver, write_vector

logger = logging.getLogger(__name__)

Simplify = Literal["auto"] | float | None
#: `simplify="auto"`: the tolerance in pixels.
AUTO_SIMPLIFY_PIXELS = 1.5
#: Stages after the blocks that `polygonize` reports progress for: merge small polygons, simplify, measure.
_STAGES = 3


class _Steps:
    """Progress over a known number of steps: the raster blocks, then the stages."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def advance(self, message: str) -> None:
        """Report one more step done, then stop if the user canceled (unless it was the last step)."""
        self.done += 1
        self.progress.report(self.done, self.total, message)
        if self.done < self.total:
            check_canceled(self.progress)


def polygonize(
    class_raster: str | os.PathLike[str],
    *,
    simplify: Simplify = "auto",
    min_area: float = 0.0,
    class_names: Sequence[str] | None = None,
    block_size: int = 2048,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """The class polygons of a class raster, as a GeoDataFrame in the raster's CRS.

    Each 4-connected region of one class id becomes one polygon (holes kept), however many blocks it spans;
    no-data pixels (the raster's no-data, and 255 in uint8 rasters) get none.

    Args:
        class_raster: a single-band integer raster of class ids 0..N, e.g. from `cmtgeo predict`.
        simplify: "auto" (1.5 pixels), a tolerance in CRS units, or None / 0 for exact pixel edges.
            Simplification keeps the coverage: neighbours share their simplified edges.
        min_area: polygons under this many m² merge into the neighbour they share the longest edge with
            (dropped when they have none, e.g. surrounded by no-data); 0 keeps every polygon.
        class_names: names of class ids 0..N-1; None reads them from the raster's `class_names` tag
            (see `cmt_geo.io.class_raster`), else names are "class_<id>".
        block_size: side of the square blocks read at a time, pixels; memory for the raster grows with its square.
        progress: told after each block and stage, and asked whether to stop.

    Returns:
        Polygons (exteriors counter-clockwise, holes clockwise) with the columns class_id (int32), class_name,
        area_m2 and perimeter_m (metres, holes included, measured on a local equal-area projection so geographic
        CRSs give metres too) and geometry.

    Raises:
        InvalidRasterError: the file is missing or not a single-band integer raster with a CRS.
        ConfigError: a bad option, or class ids that `class_names` does not name.
        CanceledError: `progress` asked to stop.
    """
    return _polygons(class_raster, simplify, min_area, class_names, block_size, progress, later_steps=0)[0]


def vectorize(
    class_raster: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    simplify: Simplify = "auto",
    min_area: float = 0.0,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    block_size: int = 2048,
    progress: Progress | None = None,
) -> Path:
    """Write the class polygons of a class raster to a vector file: .gpkg (GeoPackage 1.3), .shp, .geojson, .parquet.

    See `polygonize` for the polygons and their attributes; the output is in the raster's CRS and appears complete
    or not at all (see `write_vector`).

    Args:
        class_raster: a single-band integer raster of class ids, e.g. from `cmtgeo predict`.
        output: the vector file; its suffix picks the format and its stem names the layer.
        simplify: "auto" (1.5 pixels), a tolerance in CRS units, or None / 0 for exact pixel edges.
        min_area: merge polygons under this many m² into their longest-shared-edge neighbour; 0 keeps all.
        class_names: names of class ids 0..N-1; None reads them from the raster's `class_names` tag.
        overwrite: replace an existing output (for .shp, the whole set).
        block_size: side of the square blocks read at a time, pixels.
        progress: told after each block and stage, and asked whether to stop.

    Returns:
        The output path.

    Raises:
        InvalidRasterError: the input is missing or not a single-band integer raster with a CRS.
        ConfigError: a bad option or output suffix, or class ids that `class_names` does not name.
        OutputExistsError: the output exists and `overwrite` is False (checked before any work).
        CanceledError: `progress` asked to stop; nothing is written.
    """
    vector_driver(output)
    refuse_existing(output, overwrite)
    frame, steps = _polygons(class_raster, simplify, min_area, class_names, block_size, progress, later_steps=1)
    written = write_vector(frame, output, overwrite=overwrite)
    steps.advance("written")
    logger.info("wrote %d polygons to %s", len(frame), written)
    return written


def _polygons(
    class_raster: str | os.PathLike[str],
    simplify: Simplify,
    min_area: float,
    class_names: Sequence[str] | None,
    block_size: int,
    progress: Progress | None,
    *,
    later_steps: int,
) -> tuple[gpd.GeoDataFrame, _Steps]:
    """`polygonize`, and its progress steps, counting `later_steps` more that the caller reports."""
    path = Path(class_raster).expanduser()
    _check_options(simplify, min_area, block_size)
    with _open_class_raster(path) as src:
        windows = list(square_windows(src.height, src.width, block_size))
        steps = _Steps(progress or NullProgress(), len(windows) + _STAGES + later_steps)
        return _polygon_frame(src, path, windows, simplify, min_area, class_names, steps), steps


def _check_options(simplify: Simplify, min_area: float, block_size: int) -> None:
    if not (simplify is None or simplify == "auto" or (isinstance(simplify, int | float) and simplify >= 0)):
        raise ConfigError(
            f"simplify={simplify!r} is not a simplification; use 'auto', None, or a tolerance >= 0 in CRS units"
        )
    if not min_area >= 0:
        raise ConfigError(f"min_area={min_area!r} must be an area >= 0 in square metres (0 keeps every polygon)")
    if not (isinstance(block_size, int) and block_size >= 1):
        raise ConfigError(f"block_size={block_size!r} must be a positive number of pixels, e.g. 2048")


def _open_class_raster(path: Path) -> DatasetReader:
    """Open a class raster, checking that it is one band of integers with a CRS."""
    if not path.exists():
        raise InvalidRasterError(
            f"{path} does not exist; give the path of a class raster, e.g. one written by cmtgeo predict"
        )
    src = open_raster(path)
    dtype = np.dtype(src.dtypes[0])
    if src.count != 1 or dtype.kind not in "iu":
        src.close()
        raise InvalidRasterError(
            f"{path} has {src.count} band(s) of {dtype}; vectorize needs one band of integer class ids, "
            "e.g. the class raster cmtgeo predict writes"
        )
    if src.crs is None:
        src.close()
        raise InvalidRasterError(
            f"{path} has no CRS, so polygons would have no place on the map; georeference it first, e.g. "
            f"gdal_edit.py -a_srs EPSG:32632 {path}"
        )
    return src


def _polygon_frame(
    src: DatasetReader,
    path: Path,
    windows: list[Window],
    simplify: Simplify,
    min_area: float,
    class_names: Sequence[str] | None,
    steps: _Steps,
) -> gpd.GeoDataFrame:
    names = tuple(class_names) if class_names is not None else read_class_names(src)
    geometries, class_ids = polygonize_blocks(
        src, path, windows, nodata=_nodata_values(src), on_block=lambda: steps.advance("polygonized a block")
    )
    _check_class_names(class_ids, names, path)
    crs = CRS.from_wkt(src.crs.to_wkt())
    to_metric = local_equal_area(crs, tuple(src.bounds))
    if min_area > 0:
        areas = area_perimeter_m(_to_crs(geometries, src.transform), to_metric)[0]
        geometries, class_ids = merge_small_polygons(geometries, class_ids, areas, min_area)
    steps.advance("merged small polygons")
    geometries = _to_crs(geometries, src.transform)
    tolerance = _tolerance(simplify, src.transform)
    if tolerance > 0:
        geometries = shapely.coverage_simplify(geometries, tolerance)
    geometries = shapely.orient_polygons(geometries)  # exteriors counter-clockwise, holes clockwise (RFC 7946)
    steps.advance("simplified")
    areas, perimeters = area_perimeter_m(geometries, to_metric)
    steps.advance("measured")
    return gpd.GeoDataFrame(
        {
            "class_id": class_ids,
            "class_name": _class_labels(class_ids, names),
            "area_m2": areas,
            "perimeter_m": perimeters,
        },
        geometry=geometries,
        crs=crs,
    )


def _nodata_values(src: DatasetReader) -> frozenset[int]:
    """Pixel values without a class: the raster's integer no-data, and 255 in uint8 rasters (the cmt-geo no-data)."""
    values = {IGNORE_INDEX} if src.dtypes[0] == "uint8" else set()
    if src.nodata is not None and float(src.nodata).is_integer():
        values.add(int(src.nodata))
    return frozenset(values)


def _check_class_names(class_ids: npt.NDArray[np.int32], names: tuple[str, ...] | None, path: Path) -> None:
    """Check that the class names (when given) name every class id."""
    if names is not None and class_ids.size and class_ids.max() >= len(names):
        raise ConfigError(
            f"{path} holds class id {class_ids.max()} but {len(names)} class names {list(names)} name ids "
            f"0..{len(names) - 1}; give one name per class id (class_names=[...], --classes a,b,c)"
        )


def _class_labels(class_ids: npt.NDArray[np.int32], names: tuple[str, ...] | None) -> npt.NDArray[np.object_]:
    """The class name of each polygon ("class_<id>" when there are no names)."""
    if names is None:
        return np.array([f"class_{class_id}" for class_id in class_ids.tolist()], dtype=object)
    return np.array(names, dtype=object)[class_ids]


def _tolerance(simplify: Simplify, transform: Affine) -> float:
    """The simplification tolerance in CRS units."""
    if simplify == "auto":
        return AUTO_SIMPLIFY_PIXELS * abs(transform.determinant) ** 0.5
    return float(simplify or 0.0)


def _to_crs(geometries: Geometries, transform: Affine) -> Geometries:
    """Polygons in pixel coordinates -> the raster's CRS (vertices shared in pixels stay shared)."""
    a, b, c, d, e, f = transform[:6]
    return shapely.transform(
        geometries, lambda xy: np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f])
    )
