"""Splits: the official train / test partition, and a validation split carved from training data by tile or, within
tiles, by spatial blocks."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from affine import Affine

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.data.tiles import Tile, TileFiles
from cmt_geo.errors import ConfigError

#: An area in dataset coordinates: (xmin, ymin, xmax, ymax).
Box = tuple[float, float, float, float]

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


def check_split(split: str) -> str:
    """`split` itself, when it is one of `SPLITS`.

    Raises:
        ConfigError: an unknown split.
    """
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not a split; use one of {', '.join(SPLITS)}")
    return split


def carve_validation(groups: Sequence[str], fraction: float, seed: int, chosen: Sequence[str] | None) -> set[str]:
    """The groups (tiles or sequences) moved from training to validation.

    Args:
        groups: the training groups present.
        fraction: share of groups to carve when `chosen` is None; at least one group is carved when there are two
            or more and the fraction is above 0.
        seed: seeds the choice, so the same folder always gives the same split.
        chosen: explicit validation groups; each must be a training group.

    Raises:
        ConfigError: the fraction is outside [0, 1) or a chosen group is not a training group.
    """
    present = sorted(set(groups))
    if chosen is not None:
        unknown = sorted(set(chosen) - set(present))
        if unknown:
            raise ConfigError(
                f"validation tiles {unknown} are not training tiles here; choose among {present[:20]}"
                + (" …" if len(present) > 20 else "")
            )
        return set(chosen)
    if not 0 <= fraction < 1:
        raise ConfigError(f"val_fraction={fraction!r} is outside [0, 1); use e.g. 0.1")
    if fraction == 0 or len(present) < 2:
        return set()
    count = min(max(1, round(fraction * len(present))), len(present) - 1)
    return set(random.Random(seed).sample(present, count))


def split_tiles(
    found: Sequence[TileFiles],
    val_fraction: float,
    val_tiles: Sequence[str] | None,
    seed: int,
    test_source: str = "test",
) -> dict[str, list[TileFiles]]:
    """The tiles of every split.

    "train" and "val" partition the official training tiles by group (see `carve_validation`); "test" is the
    official `test_source` split, meant for evaluation only.

    Raises:
        ConfigError: bad validation options.
    """
    training = [files for files in found if files.split == "train"]
    validation = carve_validation([files.group for files in training], val_fraction, seed, val_tiles)
    return {
        "train": [files for files in training if files.group not in validation],
        "val": [files for files in training if files.group in validation],
        "test": [files for files in found if files.split == test_source],
    }


def select_split(
    found: Sequence[TileFiles],
    split: str,
    val_fraction: float,
    val_tiles: Sequence[str] | None,
    seed: int,
    test_source: str = "test",
) -> list[TileFiles]:
    """The tiles of one split (see `split_tiles`).

    Raises:
        ConfigError: an unknown split, or bad validation options.
    """
    return split_tiles(found, val_fraction, val_tiles, seed, test_source)[check_split(split)]


def carving_warning(splits: Mapping[str, Sequence[TileFiles]]) -> str | None:
    """What is wrong with a validation split carved from training tiles, if anything: train or val is empty, or
    validation took one of only two training groups."""
    train = sorted({files.group for files in splits["train"]})
    val = sorted({files.group for files in splits["val"]})
    if val and not train:
        return f"validation took every training tile ({_names(val)}), so train is empty; choose fewer val_tiles"
    if len(train) == 1 and not val:
        return f"validation is empty: there is only one training tile ({train[0]}); add tiles or choose val_tiles"
    if len(train) == 1 and len(val) == 1:
        return (
            f"validation took {val[0]!r}, one of only two training tiles, so train uses {train[0]!r} alone; pass "
            "split_options=SplitOptions(val_fraction=0) to train on both, or choose with val_tiles=[...]"
        )
    return None


def describe_splits(splits: Mapping[str, Sequence[TileFiles]]) -> str:
    """One line saying which tiles went to which split, e.g. "train: 3 tiles (a, b, c); val: 1 tile (d); test: 0"."""
    parts = []
    for split, tiles in splits.items():
        count = f"{len(tiles)} tile{'' if len(tiles) == 1 else 's'}"
        parts.append(f"{split}: {count} ({_names([files.name for files in tiles])})" if tiles else f"{split}: 0")
    return "; ".join(parts)


def _names(names: Sequence[str], most: int = 10) -> str:
    """The first `most` names, comma-separated, saying how many more there are."""
    return ", ".join(names[:most]) + (f", … ({len(names) - most} more)" if len(names) > most else "")


@dataclass(frozen=True)
class SpatialBlocks:
    """Validation carved from inside training tiles: square blocks, each ringed by a gap that no patch uses.

    Training patches avoid the blocks grown by the gap (`RandomPatchSampler(exclude=blocks.exclusion())`), validation
    patches lie inside the blocks (`GridPatchSampler(within=blocks.boxes)`), so no patch straddles the two and no
    training patch sees validation pixels. `mask` also ignores the other split's labels in a sample.

    Args:
        boxes: the validation blocks, (xmin, ymin, xmax, ymax) in dataset coordinates.
        gap: width of the unused ring around each block, in dataset units.
    """

    boxes: tuple[Box, ...]
    gap: float

    def exclusion(self) -> tuple[Box, ...]:
        """The blocks grown by the gap: what training patches must not touch."""
        g = self.gap
        return tuple((x0 - g, y0 - g, x1 + g, y1 + g) for x0, y0, x1, y1 in self.boxes)

    def mask(self, split: Literal["train", "val"]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A sample transform that sets the mask to `IGNORE_INDEX` outside the split's part of the tiles (for "val":
        outside the blocks; for "train": inside the blocks and their gap)."""
        return _BlockMask(self.boxes if split == "val" else self.exclusion(), keep_inside=split == "val")


class _BlockMask:
    """Ignore labels inside (or outside) boxes, located through the sample's "transform" (a picklable transform)."""

    def __init__(self, boxes: Sequence[Box], keep_inside: bool) -> None:
        self.boxes, self.keep_inside = tuple(boxes), keep_inside

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        mask = sample["mask"]
        height, width = mask.shape[-2:]
        inside = np.zeros((height, width), dtype=bool)
        transform = Affine(*(float(v) for v in sample["transform"][:6]))
        for top, left, bottom, right in pixel_rects(transform, height, width, self.boxes):
            inside[top:bottom, left:right] = True
        drop = ~inside if self.keep_inside else inside
        if drop.any():
            import torch

            mask[torch.from_numpy(drop)] = IGNORE_INDEX  # the sample's own tensor, made for this read
        return sample


def pixel_rects(transform: Affine, height: int, width: int, boxes: Sequence[Box]) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) pixel rectangles of the `boxes` (dataset coordinates) that overlap a `height` x
    `width` raster placed by `transform`, cut to it."""
    inverse = ~transform
    rects = []
    for x0, y0, x1, y1 in boxes:
        cols, rows = zip(inverse @ (x0, y0), inverse @ (x1, y1), strict=True)
        top, bottom = (min(max(round(r), 0), height) for r in sorted(rows))
        left, right = (min(max(round(c), 0), width) for c in sorted(cols))
        if bottom > top and right > left:
            rects.append((top, left, bottom, right))
    return rects


def carve_blocks(tiles: Sequence[Tile], block_size: int, fraction: float, gap: int, seed: int) -> SpatialBlocks:
    """Carve validation blocks from tiles: each tile is cut into about `block_size` pixel squares, and a seeded
    random `fraction` of all squares (at least one, never all) becomes validation.

    Args:
        tiles: the training tiles.
        block_size: block side in pixels.
        fraction: share of blocks that become validation, in (0, 1).
        gap: pixels between a validation block and any training patch.
        seed: seeds the choice, so the same tiles always give the same blocks.

    Raises:
        ConfigError: a fraction outside (0, 1), a block size or gap out of range, or tiles that give fewer than two
            blocks.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"val_fraction={fraction!r} must be in (0, 1) to carve validation blocks, e.g. 0.2")
    if block_size < 1 or gap < 0:
        raise ConfigError(f"val_block_size={block_size} must be positive and val_gap={gap} not negative (pixels)")
    candidates: list[Box] = []
    for tile in tiles:
        rows = np.linspace(0, tile.height, max(1, round(tile.height / block_size)) + 1).round().astype(int)
        cols = np.linspace(0, tile.width, max(1, round(tile.width / block_size)) + 1).round().astype(int)
        for top, bottom in itertools.pairwise(rows):
            for left, right in itertools.pairwise(cols):
                x0, y0 = tile.transform @ (int(left), int(top))
                x1, y1 = tile.transform @ (int(right), int(bottom))
                candidates.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    if len(candidates) < 2:
        raise ConfigError(
            f"the training tiles give {len(candidates)} block of about {block_size} px; validation blocks need at "
            f"least two: lower val_block_size (--set data.val_block_size={max(32, block_size // 4)})"
        )
    count = min(max(1, round(fraction * len(candidates))), len(candidates) - 1)
    chosen = sorted(random.Random(seed).sample(range(len(candidates)), count))
    resolution = abs(tiles[0].transform.a)
    return SpatialBlocks(tuple(candidates[i] for i in chosen), gap * resolution)
