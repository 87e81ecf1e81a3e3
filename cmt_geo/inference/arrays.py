"""Prediction in memory for notebooks: an `xarray.DataArray` (rioxarray) in, a class `DataArray` out."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import rasterio

from cmt_geo.inference.engine import ModelSource, predict_raster
from cmt_geo.inference.options import PredictOptions
from cmt_geo.io.class_raster import read_class_names
from cmt_geo.progress import Progress


def predict_array(
    data: Any, model: ModelSource, *, options: PredictOptions | None = None, progress: Progress | None = None
) -> Any:
    """Classify a georeferenced (band, y, x) `DataArray` (e.g. from `rioxarray.open_rasterio`).

    The array goes through the same engine as `predict_raster` by way of a temporary GeoTIFF, so it must fit on
    disk once; the result is loaded into memory.

    Args:
        data: a (band, y, x) DataArray with rioxarray's CRS and transform (`data.rio`); band names are taken from
            its "long_name" attribute when it names the model's bands.
        model: a checkpoint path, or a (model, card) pair.
        options: tiling, batching, TTA, band mapping, no-data and device.
        progress: told the windows done so far.

    Returns:
        A (y, x) uint8 DataArray of class ids on the input's grid (no-data 255), with the class names in
        `attrs["class_names"]`.
    """
    import rioxarray

    with tempfile.TemporaryDirectory(prefix="cmtgeo-") as folder:
        source, output = Path(folder) / "input.tif", Path(folder) / "classes.tif"
        data.rio.to_raster(source)
        predict_raster(source, output, model, options=options, progress=progress)
        opened: Any = rioxarray.open_rasterio(output, masked=False)
        classes = opened.squeeze("band", drop=True).load()
        with rasterio.open(output) as written:
            classes.attrs["class_names"] = list(read_class_names(written) or ())
        classes.name = "class"
        return classes
