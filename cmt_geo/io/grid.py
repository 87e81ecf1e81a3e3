"""The tiling grid: windows that cover a raster with a given size and step, the last ones flush with its edges."""

from __future__ import annotations

from collections.abc import Iterator

from rasterio.windows import Window


def grid_starts(extent: int, size: int, stride: int) -> list[int]:
    """Window starts covering `extent` pixels, the last one flush with the edge (pulled inward: no overhang, no
    padding); one start at 0 when the extent is smaller than a window."""
    if extent <= size:
        return [0]
    starts = list(range(0, extent - size, stride))
    return [*starts, extent - size]


def grid_windows(height: int, width: int, size: tuple[int, int], stride: tuple[int, int]) -> Iterator[Window]:
    """Windows of (rows, cols) `size` stepping by `stride`, row by row, covering a `height` x `width` raster (a
    window is cut to the raster when the raster is smaller)."""
    for row in grid_starts(height, size[0], stride[0]):
        for col in grid_starts(width, size[1], stride[1]):
            yield Window(col, row, min(size[1], width), min(size[0], height))
