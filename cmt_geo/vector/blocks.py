"""Polygonize a class raster block by block (bounded memory) and merge the pieces that meet across block borders.

Polygons are traced in pixel coordinates (x = column, y = row), so every vertex is an integer and the pieces of one
region in neighbouring blocks meet on exactly the same line: their union is exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from rasterio import features
from rasterio.io import DatasetReader
from rasterio.windows import Window

from cmt_geo.errors import InvalidRasterError
from cmt_geo.io.raster import read_window
from cmt_geo.vector.coverage import Geometries, connected_groups, node_coverage, union_groups

#: Integer types GDAL's polygonizer reads as they are; other integer rasters are read as int32.
_POLYGONIZE_DTYPES = ("uint8", "uint16", "int16", "int32")
_INT32 = np.iinfo(np.int32)


def square_windows(height: int, width: int, size: int) -> Iterator[Window]:
    """Square windows of `size` pixels (cut at the right and bottom edges), row by row."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def polygonize_blocks(
    src: DatasetReader,
    path: Path,
    windows: list[Window],
    *,
    nodata: frozenset[int],
    on_block: Callable[[], None],
) -> tuple[Geometries, npt.NDArray[np.int32]]:
    """The polygons of every 4-connected region of equal class id, in pixel coordinates.

    Args:
        src: a single-band integer raster.
        path: its path, for error messages.
        windows: blocks that tile the raster, read one at a time (e.g. from `square_windows`).
        nodata: values that get no polygons.
        on_block: called after each block (progress and cancellation).

    Returns:
        (N,) polygons (holes kept) forming a noded coverage (see `node_coverage`), and (N,) their class ids.

    Raises:
        InvalidRasterError: a block cannot be read, or holds a negative class id or one beyond int32.
    """
    pieces: list[Geometries] = []
    piece_ids: list[npt.NDArray[np.int32]] = []
    on_edge: list[npt.NDArray[np.bool_]] = []
    for window in windows:
        geometries, ids = _block_polygons(read_window(src, 1, window, path), window, nodata, path)
        pieces.append(geometries)
        piece_ids.append(ids)
        on_edge.append(_on_inner_edge(geometries, window, src.height, src.width))
        on_block()
    geometries, ids, border = node_coverage(np.concatenate(pieces)), np.concatenate(piece_ids), np.concatenate(on_edge)
    merged, merged_ids = _merge_across_blocks(geometries[border], ids[border])
    return np.concatenate([geometries[~border], merged]), np.concatenate([ids[~border], merged_ids])


def _block_polygons(
    block: npt.NDArray[Any], window: Window, nodata: frozenset[int], path: Path
) -> tuple[Geometries, npt.NDArray[np.int32]]:
    """The polygons of one block, in the raster's pixel coordinates."""
    mask = ~np.isin(block, list(nodata)) if nodata else None
    if mask is not None and not mask.any():
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int32)
    shapes = features.shapes(
        _polygonizable(block, mask, path),
        mask=mask,
        connectivity=4,
        transform=Affine.translation(window.col_off, window.row_off),
    )
    rings: list[list[tuple[float, float]]] = []
    ring_counts: list[int] = []
    values: list[float] = []
    for geometry, value in shapes:
        coordinates = geometry["coordinates"]
        rings += coordinates
        ring_counts.append(len(coordinates))
        values.append(value)
    ids = np.array(values, dtype=np.int64)
    if ids.size and ids.min() < 0:
        raise InvalidRasterError(
            f"{path} holds class id {ids.min()} (at rows {window.row_off}..{window.row_off + window.height}); "
            "class ids are 0 or more: set the raster's no-data to that value, e.g. gdal_edit.py -a_nodata "
            f"{ids.min()} {path}"
        )
    coords = np.array(list(itertools.chain.from_iterable(rings)), dtype=np.float64).reshape(-1, 2)
    ring_offsets = np.append(0, np.cumsum([len(ring) for ring in rings]))
    polygon_offsets = np.append(0, np.cumsum(ring_counts))
    polygons = shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, (ring_offsets, polygon_offsets))
    return polygons, ids.astype(np.int32)


def _polygonizable(block: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None, path: Path) -> npt.NDArray[Any]:
    """The block in a type GDAL's polygonizer reads: as it is, or as int32 when the values fit."""
    if block.dtype.name in _POLYGONIZE_DTYPES:
        return block
    valid = block if mask is None else block[mask]
    if valid.size and (valid.min() < _INT32.min or valid.max() > _INT32.max):
        raise InvalidRasterError(
            f"{path} holds class ids {valid.min()}..{valid.max()}, beyond int32; a class raster holds ids 0..N: "
            "give the raster of class ids, not of labels or counts"
        )
    return block.astype(np.int32)


def _on_inner_edge(geometries: Geometries, window: Window, height: int, width: int) -> npt.NDArray[np.bool_]:
    """Which polygons touch a block edge that is not the raster's edge (so may continue in the next block)."""
    west, north, east, south = shapely.bounds(geometries).T
    left, top = window.col_off, window.row_off
    right, bottom = left + window.width, top + window.height
    return (
        ((west == left) & (left > 0))
        | ((east == right) & (right < width))
        | ((north == top) & (top > 0))
        | ((south == bottom) & (bottom < height))
    )


def _merge_across_blocks(
    geometries: Geometries, ids: npt.NDArray[np.int32]
) -> tuple[Geometries, npt.NDArray[np.int32]]:
    """Union the pieces of one class that share an edge (not just a corner) across block borders, transitively."""
    if len(geometries) == 0:
        return geometries, ids
    first, second = shapely.STRtree(geometries).query(geometries, predicate="touches")
    candidate = (first < second) & (ids[first] == ids[second])
    first, second = first[candidate], second[candidate]
    shares_edge = shapely.relate_pattern(geometries[first], geometries[second], "****1****")
    groups = connected_groups(len(geometries), first[shares_edge], second[shares_edge])
    merged, representative = union_groups(geometries, groups)
    return merged, ids[representative]
