#!/usr/bin/env python3
"""Generate a tiny ISPRS Vaihingen fixture in the official unpacked layout."""

import sys
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

# impervious, building, low vegetation, tree, car, clutter (ISPRS colour coding)
COLORS = [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)]
TILES = {"1": "train", "3": "train", "5": "train", "7": "train", "2": "test", "4": "test"}
HEIGHT, WIDTH = 32, 40


def _write(path: Path, array: np.ndarray) -> None:
    """An ungeoreferenced TIFF, as the ISPRS Vaihingen tiles are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "height": array.shape[1], "width": array.shape[2], "count": array.shape[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", dtype="uint8", **profile) as dst:
            dst.write(array)


def class_map(rng: np.random.Generator) -> np.ndarray:
    """(H, W) class indices in 8x8 blocks, every class present."""
    blocks = rng.permutation(np.arange(HEIGHT // 8 * WIDTH // 8) % len(COLORS)).reshape(HEIGHT // 8, WIDTH // 8)
    return np.kron(blocks, np.ones((8, 8), dtype=np.int64))


def generate(root: Path, seed: int = 0) -> None:
    """Write images to top/, full labels to gts_for_participants/ and eroded labels to the root."""
    rng = np.random.default_rng(seed)
    palette = np.array(COLORS, dtype=np.uint8)
    for name in TILES:
        classes = class_map(rng)
        image = (rng.integers(0, 200, (3, HEIGHT, WIDTH)) + classes * 9).astype(np.uint8)
        _write(root / "top" / f"top_mosaic_09cm_area{name}.tif", image)
        label = np.moveaxis(palette[classes], -1, 0)
        _write(root / "gts_for_participants" / f"top_mosaic_09cm_area{name}.tif", label)
        eroded = label.copy()
        eroded[:, ::8, :] = 0  # black boundaries
        _write(root / f"top_mosaic_09cm_area{name}_noBoundary.tif", eroded)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "fixture")
