"""Block-wise polygonization: windows tile the raster, and pieces meeting across block borders are merged."""

from __future__ import annotations

import numpy as np
import shapely

from cmt_geo.io.raster import open_raster
from cmt_geo.vector.blocks import polygonize_blocks, square_windows

from .conftest import WriteRaster


def test_square_windows_tile_the_raster_once() -> None:
    cover = np.zeros((37, 50), dtype=int)
    for window in square_windows(37, 50, 16):
        rows, cols = window.toslices()
        cover[rows, cols] += 1
    assert (cover == 1).all()


def test_a_region_over_many_blocks_is_one_polygon_in_pixel_coordinates(write_raster: WriteRaster) -> None:
    scene = np.zeros((45, 47), dtype=np.uint8)
    scene[3:42, 3:6] = scene[39:42, 3:44] = scene[3:42, 41:44] = 1  # a U over six 16-pixel blocks
    path = write_raster(scene)
    with open_raster(path) as src:
        windows = list(square_windows(src.height, src.width, 16))
        calls: list[None] = []
        geometries, ids = polygonize_blocks(
            src, path, windows, nodata=frozenset({255}), on_block=lambda: calls.append(None)
        )
    assert len(calls) == len(windows) == 9
    assert sorted(ids) == [0, 1]
    u = geometries[ids == 1][0]
    assert u.area == (scene == 1).sum()
    assert u.bounds == (3.0, 3.0, 44.0, 42.0)  # pixel coordinates: x = column, y = row
    assert shapely.equals(shapely.union_all(geometries), shapely.box(0, 0, 47, 45))
