"""A class raster's first overview (2x2 mode) written while its rows stream in, so that the COG copy finds its
overviews made (GDAL reads `NAME.ovr` as the overviews of `NAME`) instead of decoding the whole raster again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

#: Block side of the COG outputs: overviews go on halving until the largest side fits in one block.
COG_BLOCK = 512


def overview_factors(width: int, height: int) -> list[int]:
    """The overview factors (2, 4, ...) the COG driver would make for a raster of this size."""
    factors: list[int] = []
    while max(width, height) / (factors[-1] if factors else 1) > COG_BLOCK:
        factors.append(2 * (factors[-1] if factors else 1))
    return factors


class ModeOverview:
    """Writes the 2x2-mode overview of class rows given top to bottom in any number of rows at a time.

    Args:
        classes: the full-resolution class raster being written (its size, grid and profile are copied).
        path: where the overview goes: the class raster's path + ".ovr".
        nodata: the class raster's no-data value (ignored by the mode).
    """

    def __init__(self, classes: Any, path: Path, nodata: int) -> None:
        from cmt_geo.inference import _kernels

        self._mode2x2 = _kernels.mode2x2
        self.nodata = nodata
        self.width, self.height = -(-classes.width // 2), -(-classes.height // 2)
        profile = {**classes.profile, "width": self.width, "height": self.height}
        profile["transform"] = classes.transform @ Affine.scale(
            classes.width / self.width, classes.height / self.height
        )
        self.factors = overview_factors(classes.width, classes.height)
        self.file = rasterio.open(path, "w", **profile)
        self.row = 0
        self.pending: npt.NDArray[np.uint8] | None = None  # an odd row waiting for the next one

    def add(self, rows: npt.NDArray[np.uint8]) -> None:
        """Take the next (n, width) class rows."""
        if self.pending is not None and len(rows):
            self._write(np.stack([self.pending, rows[0]]))
            self.pending, rows = None, rows[1:]
        even = len(rows) - len(rows) % 2
        if even:
            self._write(rows[:even])
        if even < len(rows):
            self.pending = rows[even].copy()

    def close(self) -> None:
        """Write a last odd row, close the file and add its own overviews (the further levels, by mode)."""
        if self.pending is not None:
            self._write(self.pending[None])
            self.pending = None
        self.file.close()
        if len(self.factors) > 1:
            with rasterio.open(self.file.name, "r+") as overview:
                overview.build_overviews([f // 2 for f in self.factors[1:]], Resampling.mode)

    def _write(self, rows: npt.NDArray[np.uint8]) -> None:
        out = np.empty((-(-len(rows) // 2), self.width), dtype=np.uint8)
        self._mode2x2(np.ascontiguousarray(rows), self.nodata, out)
        self.file.write(out[None], window=Window(0, self.row, self.width, len(out)))
        self.row += len(out)
