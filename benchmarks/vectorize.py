"""Seconds and peak memory of `cmt_geo.vector.vectorize` on large synthetic class rasters.

Each raster is random smooth blobs of 6 classes (about 0.8 polygons per 1,000 pixels) plus single-pixel specks and a
no-data band, in UTM at 0.5 m, written as a tiled GeoTIFF. Each run vectorizes one raster to a GeoPackage in a
fresh process (so peak RSS is that run's alone) and prints one JSON line: size, polygons written, seconds, peak RSS.
The goal: an 8192x8192 raster with tens of thousands of polygons in under 60 s on a 2-core CPU.

    $ .venv/bin/python benchmarks/vectorize.py [--sizes 2048 8192] [--min-area 0 1] [--simplify auto]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyogrio
import rasterio
from rasterio.transform import from_origin

CLASSES = 6
BLOB_PIXELS = 32  # the blobs' scale
SPECK_FRACTION = 5e-4
STRIP_ROWS = 512


def _blobs(rows: slice, width: int, knots: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Rows of the class raster: the class whose bilinearly interpolated random field is highest."""
    y = np.arange(rows.start, rows.stop, dtype=np.float32) / BLOB_PIXELS
    x = np.arange(width, dtype=np.float32) / BLOB_PIXELS
    iy, ix = y.astype(np.int64), x.astype(np.int64)
    fy, fx = (y - iy)[:, None], x - ix
    band = knots[:, iy] * (1 - fy) + knots[:, iy + 1] * fy  # (classes, rows, knots)
    field = band[:, :, ix] * (1 - fx) + band[:, :, ix + 1] * fx
    return field.argmax(axis=0).astype(np.uint8)


def write_scene(path: Path, size: int, seed: int = 0) -> None:
    """Write a size x size class raster, strip by strip."""
    rng = np.random.default_rng(seed)
    knots = rng.random((CLASSES, size // BLOB_PIXELS + 2, size // BLOB_PIXELS + 2)).astype(np.float32)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32632",
        "transform": from_origin(500_000.0, 5_000_000.0, 0.5, 0.5),
        "nodata": 255,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, STRIP_ROWS):
            rows = slice(top, min(top + STRIP_ROWS, size))
            strip = _blobs(rows, size, knots)
            specks = rng.random(strip.shape) < SPECK_FRACTION
            strip[specks] = rng.integers(0, CLASSES, int(specks.sum()), dtype=np.uint8)
            strip[:, : size // 64] = 255  # a no-data band along the west edge
            dst.write(strip, 1, window=rasterio.windows.Window(0, top, size, strip.shape[0]))


def _run(raster: Path, output: Path, simplify: str | float | None, min_area: float) -> dict[str, Any]:
    """Vectorize once (in a child process) and measure it."""
    from cmt_geo.vector import vectorize

    start = time.perf_counter()
    vectorize(raster, output, simplify=simplify, min_area=min_area, overwrite=True)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak), "polygons": pyogrio.read_info(output)["features"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192], help="raster sides, pixels")
    parser.add_argument("--min-area", type=float, nargs="+", default=[0.0, 1.0], help="min_area values, m²")
    parser.add_argument("--simplify", default="auto", help="auto, none or a tolerance in metres")
    args = parser.parse_args()
    simplify = None if args.simplify == "none" else "auto" if args.simplify == "auto" else float(args.simplify)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            raster = Path(folder) / f"classes-{size}.tif"
            write_scene(raster, size)
            for min_area in args.min_area:
                with context.Pool(1) as pool:
                    measured = pool.apply(_run, (raster, Path(folder) / "out.gpkg", simplify, min_area))
                record = {"width": size, "height": size, "simplify": simplify, "min_area": min_area, **measured}
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
