#!/usr/bin/env python3
"""Generate a tiny LoveDA fixture: {Train,Val,Test}/{Urban,Rural}/{images_png,masks_png}/*.png (Test without masks)."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

TILES = {
    ("Train", "Urban"): [1366, 1367],
    ("Train", "Rural"): [0, 1, 2],
    ("Val", "Urban"): [3514],
    ("Val", "Rural"): [2522],
}
TEST = {("Test", "Urban"): [5183]}
SIZE = 32


def generate(root: Path, seed: int = 0) -> None:
    """Write RGB tiles and masks holding every value 0 (no data) to 7 in 4x4 blocks."""
    rng = np.random.default_rng(seed)
    for (split, scene), names in {**TILES, **TEST}.items():
        for name in names:
            images = root / split / scene / "images_png"
            images.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3)).astype(np.uint8)).save(images / f"{name}.png")
            if (split, scene) in TILES:
                masks = root / split / scene / "masks_png"
                masks.mkdir(parents=True, exist_ok=True)
                values = rng.permutation(np.arange((SIZE // 4) ** 2) % 8).reshape(SIZE // 4, SIZE // 4)
                mask = np.kron(values, np.ones((4, 4), dtype=np.int64)).astype(np.uint8)
                Image.fromarray(mask).save(masks / f"{name}.png")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "fixture")
