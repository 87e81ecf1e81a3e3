#!/usr/bin/env python3
"""Generate a tiny UAVid fixture: uavid_{train,val,test}/seqN/{Images,Labels}/*.png (test without labels)."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

# building, road, tree, low vegetation, moving car, static car, human, clutter (UAVid colour coding)
COLORS = [(128, 0, 0), (128, 64, 128), (0, 128, 0), (128, 128, 0), (64, 0, 128), (192, 0, 192), (64, 64, 0), (0, 0, 0)]
SEQUENCES = {"uavid_train": ["seq1", "seq2", "seq3", "seq4"], "uavid_val": ["seq16"], "uavid_test": ["seq21"]}
FRAMES = ["000000", "000100"]
HEIGHT, WIDTH = 48, 64


def generate(root: Path, seed: int = 0) -> None:
    """Write RGB frames and colour-coded labels; every frame shows every class in 8x8 blocks."""
    rng = np.random.default_rng(seed)
    palette = np.array(COLORS, dtype=np.uint8)
    for folder, sequences in SEQUENCES.items():
        for sequence in sequences:
            for frame in FRAMES:
                blocks = rng.permutation(np.arange(HEIGHT // 8 * WIDTH // 8) % len(COLORS))
                classes = np.kron(blocks.reshape(HEIGHT // 8, WIDTH // 8), np.ones((8, 8), dtype=np.int64))
                images = root / folder / sequence / "Images"
                images.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH, 3)).astype(np.uint8)).save(images / f"{frame}.png")
                if folder != "uavid_test":  # test labels are withheld
                    labels = root / folder / sequence / "Labels"
                    labels.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(palette[classes]).save(labels / f"{frame}.png")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "fixture")
