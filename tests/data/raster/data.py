#!/usr/bin/env python3
"""Generate a tiny user dataset: GeoTIFFs in two CRSs with no-data, class rasters, and class polygons."""

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.transform import from_origin

CLASSES = ["water", "field", "forest"]
HEIGHT, WIDTH = 48, 64
NODATA = 0
# a.tif in UTM 32N at 1 m; b.tif in UTM 33N at 2 m, so it must be warped to a's grid
RASTERS = {
    "a": ("EPSG:32632", from_origin(500000, 5000000, 1.0, 1.0)),
    "b": ("EPSG:32633", from_origin(300000, 5000000, 2.0, 2.0)),
}


def class_map() -> np.ndarray:
    """Left third water, middle field, right forest."""
    return np.repeat(np.repeat(np.arange(3), WIDTH // 3 + 1)[None, :WIDTH], HEIGHT, axis=0).astype(np.uint8)


def generate(root: Path, seed: int = 0) -> None:
    """Write images/{a,b}.tif (3 bands uint16, no-data 0 in the top-left 8x8), labels/{a,b}.tif and polygons.gpkg."""
    rng = np.random.default_rng(seed)
    classes = class_map()
    polygons = []
    for name, (crs, transform) in RASTERS.items():
        image = (rng.integers(100, 1000, (3, HEIGHT, WIDTH)) + classes.astype(np.int64) * 1000).astype(np.uint16)
        image[:, :8, :8] = NODATA
        label = classes.copy()
        label[:8, :8] = 255
        for folder, array, nodata in (("images", image, NODATA), ("labels", label[None], 255)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            profile = {"height": HEIGHT, "width": WIDTH, "count": len(array), "dtype": array.dtype.name}
            with rasterio.open(
                root / folder / f"{name}.tif", "w", crs=crs, transform=transform, nodata=nodata, **profile
            ) as dst:
                dst.write(array)
        for index, class_name in enumerate(CLASSES):
            x0, y0 = transform @ (index * (WIDTH // 3 + 1), 0)
            x1, y1 = transform @ (min((index + 1) * (WIDTH // 3 + 1), WIDTH), HEIGHT)
            polygons.append((class_name, gpd.GeoSeries([shapely.box(x0, y1, x1, y0)], crs=crs).to_crs("EPSG:3857")[0]))
    frame = gpd.GeoDataFrame({"class": [p[0] for p in polygons]}, geometry=[p[1] for p in polygons], crs="EPSG:3857")
    frame.to_file(root / "polygons.gpkg", driver="GPKG")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "fixture")
