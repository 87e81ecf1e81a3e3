"""Reading rasters with clear errors: headers, windows named in every read error, and whole-file verification."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from cmt_geo.errors import ConfigError, InvalidRasterError


@dataclass(frozen=True)
class RasterInfo:
    """What a raster header says: size, band count, data type, georeferencing and no-data."""

    height: int
    width: int
    count: int
    crs: CRS | None
    transform: Affine
    nodata: float | None
    dtype: str = "uint8"

    @property
    def georeferenced(self) -> bool:
        """True when the raster has a CRS and a real transform."""
        return self.crs is not None and self.transform != Affine.identity()

    @property
    def resolution(self) -> tuple[float, float]:
        """(x, y) pixel size in CRS units (positive)."""
        return abs(self.transform.a), abs(self.transform.e)


def open_raster(path: Path | str) -> DatasetReader:
    """Open a raster for reading, quietly when it has no georeferencing (UAVid and LoveDA PNGs, ISPRS tiles).

    Raises:
        InvalidRasterError: the file is missing or cannot be opened as a raster.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioError as exc:
        raise InvalidRasterError(f"cannot read raster {str(path)!r} ({_one_line(exc)}); replace the file") from None


def read_header(path: Path | str) -> RasterInfo:
    """The header of a raster.

    Raises:
        InvalidRasterError: the file cannot be opened as a raster.
    """
    with open_raster(path) as src:
        crs = src.crs if src.crs else None
        return RasterInfo(src.height, src.width, src.count, crs, src.transform, src.nodata, src.dtypes[0])


def read_window(
    handle: Any,
    bands: int | Sequence[int],
    window: Window | None,
    path: Path | str | None = None,
    *,
    masks: bool = False,
    **kwargs: Any,
) -> npt.NDArray[Any]:
    """`handle.read(bands, window=window)` (or `read_masks` with `masks`), with a read error naming the file and the
    window (None: the whole raster).

    Raises:
        InvalidRasterError: the file is truncated or corrupt where the window lies.
    """
    try:
        return (handle.read_masks if masks else handle.read)(bands, window=window, **kwargs)
    except RasterioError as exc:
        name = path if path is not None else handle.name
        where = (
            "in full"
            if window is None
            else f"at rows {int(window.row_off)}..{int(window.row_off + window.height)}, "
            f"columns {int(window.col_off)}..{int(window.col_off + window.width)}"
        )
        detail = _one_line(exc.__cause__ if exc.__cause__ is not None else exc)
        raise InvalidRasterError(
            f"cannot read {str(name)!r} {where} ({detail}); the file is truncated or corrupt: replace it"
        ) from None


def nodata_values(image: npt.NDArray[Any], nodata: float | None) -> npt.NDArray[np.bool_]:
    """True at every value of a (C, H, W) image that is no-data (NaN matches NaN; no value when `nodata` is None)."""
    if nodata is None:
        return np.zeros(image.shape, dtype=bool)
    return np.isnan(image) if np.isnan(nodata) else image == nodata


def block_windows(height: int, width: int, rows: int) -> Iterator[Window]:
    """Full-width windows of `rows` rows covering a raster top to bottom."""
    for top in range(0, height, rows):
        yield Window(0, top, width, min(rows, height - top))


def verify_raster(
    path: Path | str,
    bands: Sequence[int] | None = None,
    visit: Callable[[npt.NDArray[Any]], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> None:
    """Decode every block of a raster (a strip of blocks at a time, so memory stays small), proving it is readable.

    Args:
        path: the raster.
        bands: 1-based bands to decode; all when None.
        visit: called with each (bands, rows, width) strip, e.g. to count label values.
        on_rows: called with the number of rows decoded after each strip, for progress.

    Raises:
        InvalidRasterError: the file cannot be opened or a block cannot be decoded (the message names the rows).
    """
    with open_raster(path) as src:
        chosen = list(bands) if bands is not None else list(range(1, src.count + 1))
        block_rows = src.block_shapes[0][0] if src.block_shapes else 256
        rows = max(block_rows, (1 << 22) // max(1, src.width * len(chosen)) // block_rows * block_rows)
        for window in block_windows(src.height, src.width, rows):
            strip = read_window(src, chosen, window, path)
            if visit is not None:
                visit(strip)
            if on_rows is not None:
                on_rows(int(window.height))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def input_bands(src: Any, wanted: Sequence[str], bands: Sequence[int] | None) -> list[int]:
    """The 1-based bands of an open raster `src` to feed a model that takes the bands named `wanted`, in that order.

    Explicit `bands` win; else bands whose descriptions name the wanted bands; else all bands when the count matches.

    Raises:
        ConfigError: explicit bands out of range or of the wrong count.
        InvalidRasterError: the band count does not fit and the band names do not say which bands to use.
    """
    wanted = tuple(wanted)
    example = tuple(range(1, len(wanted) + 1))  # the form of the answer, as many bands as the model takes
    hint = f"pass bands in the model's order {wanted} (--bands {','.join(map(str, example))} / bands={example})"
    if bands is not None:
        if len(bands) != len(wanted) or max(bands) > src.count:
            raise ConfigError(
                f"bands={tuple(bands)} do not fit: the model takes {len(wanted)} bands {wanted} and {src.name} has "
                f"{src.count}; {hint}"
            )
        return list(bands)
    described = [(description or "").strip().lower() for description in src.descriptions]
    if all(name.lower() in described for name in wanted):
        return [described.index(name.lower()) + 1 for name in wanted]
    if src.count == len(wanted):
        return list(range(1, src.count + 1))
    raise InvalidRasterError(
        f"{src.name} has {src.count} bands but the model takes {len(wanted)} {wanted}, and the band descriptions "
        f"do not name them; {hint}"
    )
