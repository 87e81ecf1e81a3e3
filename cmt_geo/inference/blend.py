"""Seamless tiled prediction: Hann-weighted class probabilities blended in a rolling buffer of rows.

Windows arrive grid row by grid row (row starts never decrease). Rows above the current grid row's start can no
longer change, so they are finished and handed out; the buffer holds one tile height of rows, so memory depends on
the raster's width and the tile size, never on its height.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rasterio.windows import Window


def hann_weights(height: int, width: int) -> npt.NDArray[np.float32]:
    """(height, width) separable Hann window, strictly positive (a half-sample offset keeps the edges above 0)."""
    rows = np.sin(np.pi * (np.arange(height) + 0.5) / height) ** 2
    cols = np.sin(np.pi * (np.arange(width) + 0.5) / width) ** 2
    return np.outer(rows, cols).astype(np.float32)


@dataclass
class FinishedRows:
    """Blended rows [top, bottom) of the raster: probabilities (K, rows, width) and where any window had data."""

    top: int
    bottom: int
    probabilities: npt.NDArray[np.float32]
    covered: npt.NDArray[np.bool_]


class RowBlender:
    """Accumulates weighted probabilities of windows and hands out rows once no later window can touch them.

    Args:
        classes: number of classes K.
        height: raster rows.
        width: raster columns.
        tile: (rows, cols) of every window.
    """

    def __init__(self, classes: int, height: int, width: int, tile: tuple[int, int]) -> None:
        self.height, self.width = height, width
        self.rows = tile[0]
        self.weights = hann_weights(*tile)
        self.top = 0
        self.sums = np.zeros((classes, self.rows, width), dtype=np.float32)
        self.weight = np.zeros((self.rows, width), dtype=np.float32)

    def add(self, window: Window, probabilities: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_]) -> None:
        """Add one window's (K, rows, cols) probabilities, counting only its `valid` pixels."""
        row, col = int(window.row_off) - self.top, int(window.col_off)
        rows, cols = valid.shape
        weight = self.weights[:rows, :cols] * valid
        self.sums[:, row : row + rows, col : col + cols] += probabilities * weight
        self.weight[row : row + rows, col : col + cols] += weight

    def finish_until(self, row: int) -> Iterator[FinishedRows]:
        """Hand out rows [top, row) and shift the buffer so that it starts at `row`."""
        if row <= self.top:
            return
        count = min(row, self.height) - self.top
        weight = self.weight[:count]
        covered = weight > 0
        probabilities = (self.sums[:, :count] / np.where(covered, weight, 1)).astype(np.float32, copy=False)
        yield FinishedRows(self.top, self.top + count, probabilities, covered)
        self.sums = np.concatenate([self.sums[:, count:], np.zeros_like(self.sums[:, :count])], axis=1)
        self.weight = np.concatenate([self.weight[count:], np.zeros_like(self.weight[:count])], axis=0)
        self.top += count
