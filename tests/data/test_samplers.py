"""Samplers: area-weighted random patches and flush grids, sharded across ranks, reproducible per epoch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from cmt_geo.data import GridPatchSampler, RandomPatchSampler, RasterSegmentation, SplitOptions, Vaihingen
from cmt_geo.errors import ConfigError

from .conftest import nan_nodata_raster

ALL = SplitOptions(val_fraction=0)
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


@pytest.fixture
def vaihingen(pristine: Callable[[str], Path]) -> Vaihingen:
    return Vaihingen(pristine("vaihingen"), split_options=ALL)


def test_two_ranks_see_disjoint_random_patches_that_together_form_the_global_draw(vaihingen: Vaihingen) -> None:
    ranks = [list(RandomPatchSampler(vaihingen, 8, length=40, seed=5, rank=r, world_size=2)) for r in range(2)]
    assert [len(r) for r in ranks] == [40, 40]
    assert set(ranks[0]).isdisjoint(ranks[1])
    assert len(set(ranks[0])) == 40
    single = list(RandomPatchSampler(vaihingen, 8, length=80, seed=5, rank=0, world_size=1))
    assert sorted(ranks[0] + ranks[1]) == sorted(single)


def test_random_patches_are_reproducible_per_epoch_and_change_between_epochs(vaihingen: Vaihingen) -> None:
    sampler = RandomPatchSampler(vaihingen, 8, length=20, seed=1, rank=0, world_size=1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    again = RandomPatchSampler(vaihingen, 8, length=20, seed=1, rank=0, world_size=1)
    again.set_epoch(1)
    assert list(again) == second


def test_random_patches_lie_inside_tiles_and_tiles_are_drawn_by_area(vaihingen: Vaihingen) -> None:
    windows = list(RandomPatchSampler(vaihingen, (16, 24), length=400, seed=0, rank=0, world_size=1))
    for window in windows:
        tile = vaihingen.tiles[window.tile]
        assert 0 <= window.row <= tile.height - 16
        assert 0 <= window.col <= tile.width - 24
    counts = Counter(window.tile for window in windows)
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 60


def test_default_length_is_about_the_non_overlapping_patch_count(vaihingen: Vaihingen) -> None:
    assert len(RandomPatchSampler(vaihingen, 8, rank=0, world_size=1)) == 4 * (32 // 8) * (40 // 8)
    assert len(RandomPatchSampler(vaihingen, 8, rank=1, world_size=2)) == 40


def _mostly_nodata(folder: Path) -> RasterSegmentation:
    """A 64x64 raster with data only in its bottom-right 16x16 corner (no-data 0 elsewhere)."""
    image = np.zeros((1, 64, 64), dtype=np.uint8)
    image[:, 48:, 48:] = 9
    profile = {"height": 64, "width": 64, "count": 1, "dtype": "uint8", "crs": "EPSG:32632", "nodata": 0}
    with rasterio.open(folder / "a.tif", "w", transform=from_origin(0, 64, 1, 1), **profile) as dst:
        dst.write(image)
    return RasterSegmentation(folder / "a.tif", classes=["x"])


def test_samplers_skip_nodata_only_patches(tmp_path: Path) -> None:
    dataset = _mostly_nodata(tmp_path)
    windows = list(RandomPatchSampler(dataset, 8, length=100, seed=0, rank=0, world_size=1))
    assert all(w.row + 8 > 48 and w.col + 8 > 48 for w in windows)
    assert all((dataset[w]["image"] == 9).any() for w in windows[:20])
    grid = list(GridPatchSampler(dataset, 8, rank=0, world_size=1))
    assert {(w.row, w.col) for w in grid} == {(48, 48), (48, 56), (56, 48), (56, 56)}
    assert len(list(GridPatchSampler(dataset, 8, rank=0, world_size=1, skip_nodata=False))) == 64


def test_samplers_skip_nan_nodata(tmp_path: Path) -> None:
    dataset = nan_nodata_raster(tmp_path)  # NaN in the top half
    grid = list(GridPatchSampler(dataset, 8, rank=0, world_size=1))
    assert {w.row for w in grid} == {16, 24}
    assert all(w.row >= 9 for w in RandomPatchSampler(dataset, 8, length=50, seed=0, rank=0, world_size=1))


def test_grid_covers_every_pixel_and_shards_evenly(vaihingen: Vaihingen) -> None:
    full = list(GridPatchSampler(vaihingen, (12, 16), rank=0, world_size=1))
    for tile in range(len(vaihingen.tiles)):
        covered = set()
        for w in full:
            if w.tile == tile:
                covered |= {(r, c) for r in range(w.row, w.row + 12) for c in range(w.col, w.col + 16)}
        assert len(covered) == 32 * 40
    shards = [list(GridPatchSampler(vaihingen, (12, 16), rank=r, world_size=5)) for r in range(5)]
    assert len({len(s) for s in shards}) == 1
    assert set().union(*map(set, shards)) == set(full)
    uneven = [list(GridPatchSampler(vaihingen, (12, 16), rank=r, world_size=5, even_shards=False)) for r in range(5)]
    assert sum(map(len, uneven)) == len(full)
    assert set(uneven[0]).isdisjoint(uneven[1])


def test_bad_sampler_options(vaihingen: Vaihingen) -> None:
    with pytest.raises(ConfigError, match="size=0 must be positive"):
        RandomPatchSampler(vaihingen, 0)
    with pytest.raises(ConfigError, match=r"rank=2 is outside 0\.\.1"):
        GridPatchSampler(vaihingen, 8, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="length=0"):
        RandomPatchSampler(vaihingen, 8, length=0)
    with pytest.raises(ConfigError, match="world_size=2 without rank; pass both or neither"):
        GridPatchSampler(vaihingen, 8, world_size=2)
    with pytest.raises(ConfigError, match="rank=1 without world_size; pass both or neither"):
        RandomPatchSampler(vaihingen, 8, rank=1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"size": 1.5}, r"size=1\.5 must be positive whole pixel counts"),
        ({"size": (8, 2.5)}, r"size=\(8, 2\.5\) must be positive whole pixel counts"),
        ({"size": (8, 8, 8)}, r"size=\(8, 8, 8\) must be positive whole pixel counts"),
        ({"size": True}, "size=True must be positive whole pixel counts"),
        ({"size": 8, "rank": 0.5, "world_size": 2}, r"rank=0\.5 must be a whole number of at least 0"),
        ({"size": 8, "rank": 0, "world_size": 1.5}, r"world_size=1\.5 must be a whole number of at least 1"),
    ],
)
@pytest.mark.parametrize("sampler", [RandomPatchSampler, GridPatchSampler])
def test_sizes_and_ranks_must_be_whole_numbers(
    vaihingen: Vaihingen, sampler: type, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        sampler(vaihingen, **arguments)


@pytest.mark.parametrize(
    ("sampler", "arguments", "message"),
    [
        (GridPatchSampler, {"stride": 1.5}, r"stride=1\.5 must be positive whole pixel counts"),
        (GridPatchSampler, {"stride": -4}, "stride=-4 must be positive whole pixel counts"),
        (RandomPatchSampler, {"length": -3}, "length=-3 must be a whole number of at least 1"),
        (RandomPatchSampler, {"length": 2.5}, r"length=2\.5 must be a whole number of at least 1"),
        (RandomPatchSampler, {"seed": -1}, "seed=-1 must be a whole number of at least 0"),
        (RandomPatchSampler, {"seed": 0.5}, r"seed=0\.5 must be a whole number of at least 0"),
    ],
)
def test_strides_lengths_and_seeds_must_be_whole_numbers(
    vaihingen: Vaihingen, sampler: type, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        sampler(vaihingen, 8, **arguments)


def test_numpy_integers_are_whole_numbers(vaihingen: Vaihingen) -> None:
    sampler = RandomPatchSampler(vaihingen, np.int64(8), length=np.int64(3), seed=np.int64(1), rank=0, world_size=1)
    assert (sampler.size, len(list(sampler))) == ((8, 8), 3)


def test_rank_and_world_size_come_from_torch_distributed(vaihingen: Vaihingen, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 3)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 2)
    sampler = RandomPatchSampler(vaihingen, 8, length=5, seed=0)
    assert (sampler.rank, sampler.world_size) == (2, 3)
    explicit = RandomPatchSampler(vaihingen, 8, length=5, seed=0, rank=2, world_size=3)
    assert list(sampler) == list(explicit)
    assert GridPatchSampler(vaihingen, 8).windows == GridPatchSampler(vaihingen, 8, rank=2, world_size=3).windows
