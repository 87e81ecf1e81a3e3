#!/usr/bin/env python3
"""Generate a tiny ISPRS Potsdam fixture in the official unpacked layout (georeferenced, like the real tiles)."""

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

# impervious, building, low vegetation, tree, car, clutter (ISPRS colour coding)
COLORS = [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)]
TILES = {"2_10": "train", "2_11": "train", "3_10": "train", "2_13": "test"}
SIZE = 48


def _write(path: Path, array: np.ndarray, column: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    transform = from_origin(366000.0 + column * SIZE * 0.05, 5808000.0, 0.05, 0.05)
    profile = {"height": SIZE, "width": SIZE, "count": len(array), "crs": "EPSG:32633", "transform": transform}
    with rasterio.open(path, "w", driver="GTiff", dtype="uint8", **profile) as dst:
        dst.write(array)


def generate(root: Path, seed: int = 0) -> None:
    """Write RGBIR and IRRG images (no RGB folder: RGB comes from RGBIR), full and eroded labels."""
    rng = np.random.default_rng(seed)
    palette = np.array(COLORS, dtype=np.uint8)
    for column, name in enumerate(TILES):
        classes = np.kron(rng.integers(0, len(COLORS), (SIZE // 8, SIZE // 8)), np.ones((8, 8), dtype=np.int64))
        classes[:8, : len(COLORS) * 8] = np.repeat(np.arange(len(COLORS)), 8)  # every class in the top row
        rgbir = rng.integers(1, 255, (4, SIZE, SIZE)).astype(np.uint8)
        _write(root / "4_Ortho_RGBIR" / f"top_potsdam_{name}_RGBIR.tif", rgbir, column)
        _write(root / "3_Ortho_IRRG" / f"top_potsdam_{name}_IRRG.tif", rgbir[[3, 0, 1]], column)
        label = np.moveaxis(palette[classes], -1, 0)
        _write(root / "5_Labels_all" / f"top_potsdam_{name}_label.tif", label, column)
        eroded = label.copy()
        eroded[:, :, ::8] = 0  # black boundaries
        _write(root / "5_Labels_all_noBoundary" / f"top_potsdam_{name}_label_noBoundary.tif", eroded, column)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "fixture")
