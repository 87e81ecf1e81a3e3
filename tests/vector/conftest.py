"""Small class rasters written in the tests: UTM and EPSG:4326, odd sizes, no-data, made from a seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin

from cmt_geo.io.class_raster import write_class_metadata

UTM = "EPSG:32632"
UTM_TRANSFORM = from_origin(500_000.0, 5_000_000.0, 0.5, 0.5)
GEOGRAPHIC = "EPSG:4326"
GEOGRAPHIC_TRANSFORM = from_origin(11.0, 48.0, 1e-5, 1e-5)  # about 0.74 m x 1.1 m at 48° N
GRIDS = {"utm": (UTM, UTM_TRANSFORM), "geographic": (GEOGRAPHIC, GEOGRAPHIC_TRANSFORM)}

WriteRaster = Callable[..., Path]


def class_scene(height: int = 75, width: int = 93, seed: int = 0) -> npt.NDArray[np.uint8]:
    """Classes 0..3 in 6-pixel cells (regions that cross 16-pixel blocks), 3 % single-pixel specks, and a
    no-data (255) patch."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 4, (height // 6 + 1, width // 6 + 1), dtype=np.uint8)
    scene = np.kron(cells, np.ones((6, 6), dtype=np.uint8))[:height, :width].copy()
    specks = rng.random((height, width)) < 0.03
    scene[specks] = rng.integers(0, 4, int(specks.sum()), dtype=np.uint8)
    scene[5:12, 60:75] = 255
    return scene


@pytest.fixture
def write_raster(tmp_path: Path) -> WriteRaster:
    """Write a single-band class raster and return its path."""

    def write(
        array: npt.NDArray[np.generic],
        name: str = "classes.tif",
        *,
        grid: str = "utm",
        nodata: float | None = 255,
        class_names: Sequence[str] | None = None,
        crs: str | None = "from grid",
        transform: Affine | None = None,
    ) -> Path:
        path = tmp_path / name
        grid_crs, grid_transform = GRIDS[grid]
        profile = {
            "driver": "GTiff",
            "height": array.shape[-2],
            "width": array.shape[-1],
            "count": 1 if array.ndim == 2 else array.shape[0],
            "dtype": array.dtype.name,
            "crs": grid_crs if crs == "from grid" else crs,
            "transform": transform or grid_transform,
            "nodata": nodata,
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array if array.ndim == 3 else array[None])
            if class_names is not None:
                write_class_metadata(
                    dst, class_names, [(index, 2 * index, 3 * index) for index in range(len(class_names))]
                )
        return path

    return write
