"""Datasets from a config: the test split, validation carved by tiles or by blocks with a gap, statistics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cmt_geo.card import IGNORE_INDEX
from cmt_geo.data import GridPatchSampler, PatchWindow, RandomPatchSampler, write_synthetic
from cmt_geo.data.splits import carve_blocks
from cmt_geo.errors import ConfigError, DatasetNotFoundError
from cmt_geo.training.config import TrainConfig
from cmt_geo.training.datasets import (
    build_dataset,
    describe_training_data,
    ground_sample_distance,
    load_split,
)


def whole_mask(dataset: object, tile: int = 0) -> np.ndarray:
    source = dataset.tiles[tile]  # type: ignore[attr-defined]
    return dataset[PatchWindow(tile, 0, 0, source.height, source.width)]["mask"].numpy()  # type: ignore[index]


def test_one_scene_is_split_by_blocks_with_a_gap(fast_config: Callable[..., TrainConfig]) -> None:
    config = fast_config("data.val_fraction=0.25")
    train, val = load_split(config.data, "train"), load_split(config.data, "val")
    assert train.blocks == val.blocks
    assert val.blocks is not None
    assert len(val.blocks.boxes) == 1  # 4 blocks of 128 px, a quarter of them
    labelled_val = whole_mask(val.dataset) != IGNORE_INDEX
    labelled_train = whole_mask(train.dataset) != IGNORE_INDEX
    assert labelled_val.any()
    assert labelled_train.any()
    assert not (labelled_val & labelled_train).any()
    rows, cols = np.nonzero(labelled_val)
    assert rows.max() - rows.min() < 128
    assert cols.max() - cols.min() < 128
    # the gap: no training label within 16 px of a validation pixel
    grown = np.zeros_like(labelled_val)
    grown[max(rows.min() - 16, 0) : rows.max() + 17, max(cols.min() - 16, 0) : cols.max() + 17] = True
    assert not (grown & labelled_train).any()


def test_training_patches_avoid_validation_blocks_and_validation_patches_stay_inside(
    fast_config: Callable[..., TrainConfig],
) -> None:
    config = fast_config("data.val_fraction=0.25")
    train, val = load_split(config.data, "train"), load_split(config.data, "val")
    assert val.blocks is not None
    ((x0, y0, x1, y1),) = val.blocks.boxes
    tile = train.dataset.tiles[0]
    col0, row0 = ~tile.transform @ (x0, y1)
    col1, row1 = ~tile.transform @ (x1, y0)
    sampler = RandomPatchSampler(train.dataset, 64, length=60, seed=1, exclude=val.blocks.exclusion())
    for window in sampler:
        apart_rows = window.row + 64 <= row0 - 16 or window.row >= row1 + 16
        apart_cols = window.col + 64 <= col0 - 16 or window.col >= col1 + 16
        assert apart_rows or apart_cols
    grid = GridPatchSampler(val.dataset, 64, within=val.blocks.boxes, rank=0, world_size=1)
    assert len(grid) == 4
    assert all(row0 <= w.row and w.row + 64 <= row1 and col0 <= w.col and w.col + 64 <= col1 for w in grid)


def test_block_carving_needs_two_blocks_and_a_fraction(fast_config: Callable[..., TrainConfig]) -> None:
    tiles = load_split(fast_config("data.val_fraction=0").data, "train").dataset.tiles
    with pytest.raises(ConfigError, match=r"lower val_block_size \(--set data.val_block_size=128\)"):
        carve_blocks(tiles, 512, 0.2, 0, 0)
    with pytest.raises(ConfigError, match="must be in"):
        carve_blocks(tiles, 64, 1.0, 0, 0)
    assert carve_blocks(tiles, 64, 0.25, 8, 0) == carve_blocks(tiles, 64, 0.25, 8, 0)
    assert carve_blocks(tiles, 64, 0.25, 8, 0) != carve_blocks(tiles, 64, 0.25, 8, 1)


def test_several_tiles_split_by_tile_and_test_is_the_official_test(
    tmp_path: Path, fast_config: Callable[..., TrainConfig]
) -> None:
    root = write_synthetic(tmp_path / "vaihingen", layout="vaihingen", size=64, tiles=6)
    config = fast_config(
        "data.dataset=vaihingen",
        f"data.root={root}",
        "data.classes=[]",
        "data.colors=null",
        "data.val_fraction=0.25",
    )
    train, val, test = (load_split(config.data, split) for split in ("train", "val", "test"))
    assert (train.blocks, val.blocks) == (None, None)
    assert len(train.dataset.tiles) + len(val.dataset.tiles) == 4
    assert len(val.dataset.tiles) == 1
    assert {t.files.name for t in test.dataset.tiles} == {"2", "4"}
    assert test.dataset.tiles[0].files.label is not None
    assert "noBoundary" in test.dataset.tiles[0].files.label.name  # eroded labels for the test split
    assert build_dataset(config.data, "train").compact


def test_missing_dataset_and_missing_validation_are_errors(fast_config: Callable[..., TrainConfig]) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"data.root .*/nowhere does not exist; .*--set data.root=PATH"):
        build_dataset(fast_config("data.root=/nowhere").data, "train")
    with pytest.raises(ConfigError, match=r"no validation split: data.val_fraction is 0"):
        build_dataset(fast_config("data.val_fraction=0").data, "val")


def test_training_statistics_and_ground_sample_distance(fast_config: Callable[..., TrainConfig]) -> None:
    config = fast_config()
    train = load_split(config.data, "train")
    stats, pixels = describe_training_data(train.dataset, 64, 16)
    assert len(stats.mean) == 4
    assert pixels.shape == (6,)
    assert pixels.sum() > 0
    assert ground_sample_distance(config.data, train.dataset) == pytest.approx(60 / 256)
    assert ground_sample_distance(fast_config("data.ground_sample_distance=0.5").data, train.dataset) == 0.5
