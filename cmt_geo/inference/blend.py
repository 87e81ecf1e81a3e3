"""Seamless tiled prediction: Hann-weighted class probabilities blended in a rolling buffer of rows.

Windows arrive grid row by grid row (row starts never decrease). Rows above the current grid row's start can no
longer change, so they are finished and handed out; the buffer is a ring of one tile height of rows, so memory
depends on the raster's width and the tile size, never on its height, and rows are never moved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rasterio.windows import Window

from cmt_geo.card import IGNORE_INDEX


def hann_weights(height: int, width: int) -> npt.NDArray[np.float32]:
    """(height, width) separable Hann window, strictly positive (a half-sample offset keeps the edges above 0)."""
    rows = np.sin(np.pi * (np.arange(height) + 0.5) / height) ** 2
    cols = np.sin(np.pi * (np.arange(width) + 0.5) / width) ** 2
    return np.outer(rows, cols).astype(np.float32)


@dataclass
class FinishedRows:
    """Blended rows [top, bottom) of the raster.

    Attributes:
        top: first row.
        bottom: row after the last.
        classes: (rows, width) uint8 most probable class, `IGNORE_INDEX` where no window had data.
        covered: (rows, width) True where any window had data.
        probabilities: (K, rows, width) float32 blended probabilities (0 where not covered), when asked for.
    """

    top: int
    bottom: int
    classes: npt.NDArray[np.uint8]
    covered: npt.NDArray[np.bool_]
    probabilities: npt.NDArray[np.float32] | None = None

    def clip(self, top: int, bottom: int) -> FinishedRows | None:
        """The part of these rows inside [top, bottom), or None when they do not meet."""
        first, last = max(self.top, top), min(self.bottom, bottom)
        if first >= last:
            return None
        keep = slice(first - self.top, last - self.top)
        probabilities = None if self.probabilities is None else self.probabilities[:, keep]
        return FinishedRows(first, last, self.classes[keep], self.covered[keep], probabilities)


class RowBlender:
    """Accumulates the Hann-weighted class probabilities of windows and hands out rows once no later window can
    touch them.

    Args:
        classes: number of classes K.
        height: raster rows.
        width: raster columns.
        tile: (rows, cols) of every window.
        top: the first row to blend (the first window's row).
        probabilities: also hand out the blended probabilities (else only the classes).
    """

    def __init__(
        self,
        classes: int,
        height: int,
        width: int,
        tile: tuple[int, int],
        *,
        top: int = 0,
        probabilities: bool = False,
    ) -> None:
        import numba

        from cmt_geo.inference import _kernels
        from cmt_geo.ops._numba import use_torch_threads

        use_torch_threads()
        self._kernels = _kernels
        self._chunks = 4 * numba.get_num_threads()  # of a window's rows: a few per thread, taken as they finish
        self.height, self.width = height, width
        self.rows = tile[0]
        self.weights = hann_weights(*tile)
        self.keep_probabilities = probabilities
        self.top = top
        self.sums = np.zeros((classes, self.rows, width), dtype=np.float32)
        # the weight each pixel got, to turn sums into probabilities; the classes need none (argmax of the sums,
        # covered where the top sum is above 0), so without probabilities it is not kept: less memory traffic
        self.weight = np.zeros((self.rows, width) if probabilities else (0, 0), dtype=np.float32)

    def add(self, window: Window, logits: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_] | None = None) -> None:
        """Add one window's (K, rows, cols) class logits (their softmax over K is the probability), counting only
        its `valid` pixels (all when None)."""
        row, col = int(window.row_off), int(window.col_off)
        rows, cols = logits.shape[1:]
        if not (self.top <= row <= self.top + self.rows - rows and 0 <= col <= self.width - cols):
            raise ValueError(f"window {window} is outside the rows {self.top}..{self.top + self.rows} being blended")
        weight = self.weights[:rows, :cols]
        if valid is not None:
            weight = weight * valid
        scores = logits.astype(np.float32, copy=False)
        self._kernels.accumulate(self.sums, self.weight, scores, weight, row, col, self._chunks)

    def finish_until(self, row: int) -> Iterator[FinishedRows]:
        """Hand out rows [top, row) and make `row` the top."""
        if row <= self.top:
            return
        count = min(row, self.height) - self.top
        if count > self.rows:
            raise ValueError(f"rows {self.top}..{row} span more than the {self.rows} rows being blended")
        probabilities = None
        if self.keep_probabilities:
            ring = (np.arange(self.top, self.top + count)) % self.rows
            weight = self.weight[ring]
            probabilities = (self.sums[:, ring] / np.where(weight > 0, weight, 1)).astype(np.float32, copy=False)
        classes = np.empty((count, self.width), dtype=np.uint8)
        self._kernels.classify(self.sums, self.weight, self.top, IGNORE_INDEX, classes)
        yield FinishedRows(self.top, self.top + count, classes, classes != IGNORE_INDEX, probabilities)
        self.top += count
