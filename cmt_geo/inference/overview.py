"""A class raster's overviews (2x2 modes of 2x2 modes ...) written while its rows stream in, so that the COG copy
finds them made instead of decoding and resampling the whole raster again. GDAL reads `NAME.ovr` as the first
overview of `NAME`, `NAME.ovr.ovr` as the second, and so on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.windows import Window

#: Block side of the COG outputs: overviews go on halving until the largest side fits in one block.
COG_BLOCK = 512


def overview_factors(width: int, height: int) -> list[int]:
    """The overview factors (2, 4, ...) the COG driver would make for a raster of this size."""
    factors: list[int] = []
    while max(width, height) / (factors[-1] if factors else 1) > COG_BLOCK:
        factors.append(2 * (factors[-1] if factors else 1))
    return factors


def overview_path(path: Path) -> Path:
    """Where GDAL looks for the external overviews of `path`."""
    return path.with_name(path.name + ".ovr")


def remove_overviews(path: Path) -> None:
    """Delete the chain of external overviews of `path`."""
    while (path := overview_path(path)).exists():
        path.unlink()


class ModeOverview:
    """Writes the 2x2-mode overview of class rows given top to bottom in any number of rows at a time, and passes
    its own rows on to the next level until the largest side fits in one COG block.

    Args:
        classes: the class raster being written (its size, grid and profile are copied).
        path: where the overview goes: `overview_path` of the class raster.
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
        self.file = rasterio.open(path, "w", **profile)
        self.next = ModeOverview(self.file, overview_path(path), nodata) if self.needs_next else None
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

    @property
    def needs_next(self) -> bool:
        """Whether the COG wants another, coarser level below this one."""
        return bool(overview_factors(self.width, self.height))

    def close(self) -> None:
        """Write a last odd row and close this level and the next ones."""
        if self.pending is not None:
            self._write(self.pending[None])
            self.pending = None
        self.file.close()
        if self.next is not None:
            self.next.close()

    def _write(self, rows: npt.NDArray[np.uint8]) -> None:
        out = np.empty((-(-len(rows) // 2), self.width), dtype=np.uint8)
        self._mode2x2(np.ascontiguousarray(rows), self.nodata, out)
        self.file.write(out[None], window=Window(0, self.row, self.width, len(out)))
        self.row += len(out)
        if self.next is not None:
            self.next.add(out)
