"""The tiling grid: full coverage, last windows flush with the edges, rasters smaller than a window."""

from __future__ import annotations

import numpy as np
import pytest

from cmt_geo.io.grid import grid_starts, grid_windows


def test_grid_sits_flush_with_tile_edges_without_extra_rows() -> None:
    assert grid_starts(32, 8, 8) == [0, 8, 16, 24]
    assert grid_starts(30, 8, 8) == [0, 8, 16, 22]
    assert grid_starts(30, 8, 6) == [0, 6, 12, 18, 22]
    assert grid_starts(5, 8, 8) == [0]


@pytest.mark.parametrize(("height", "width"), [(37, 53), (8, 8), (5, 40)])
def test_windows_cover_every_pixel_and_stay_inside(height: int, width: int) -> None:
    covered = np.zeros((height, width), dtype=int)
    for window in grid_windows(height, width, (8, 8), (6, 6)):
        assert min(window.row_off, window.col_off) >= 0
        assert window.row_off + window.height <= height
        assert window.col_off + window.width <= width
        covered[window.row_off : window.row_off + window.height, window.col_off : window.col_off + window.width] += 1
    assert (covered >= 1).all()
