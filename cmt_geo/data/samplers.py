"""Patch samplers: random area-weighted patches for training and a grid for validation, sharded across DDP ranks."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt
import torch
from rasterio.enums import Resampling
from rasterio.windows import Window
from torch.utils.data import Sampler

from cmt_geo.data.base import PatchWindow, TiledSegmentationDataset
from cmt_geo.data.splits import Box, pixel_rects
from cmt_geo.errors import ConfigError
from cmt_geo.io.grid import grid_starts
from cmt_geo.io.raster import nodata_values, read_window

#: Draws per wanted patch before a random sampler gives up avoiding a patch it already drew this epoch.
_MAX_TRIES = 50


def _whole(value: object, minimum: int) -> TypeGuard[int | np.integer[Any]]:
    """True when `value` is an integer (Python or NumPy, not a bool) of at least `minimum`."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value >= minimum)


def _count(value: object, what: str, minimum: int) -> int:
    """`value` as an int.

    Raises:
        ConfigError: `value` is not an integer of at least `minimum` (the message names the argument `what`).
    """
    if not _whole(value, minimum):
        raise ConfigError(f"{what}={value!r} must be a whole number of at least {minimum}")
    return int(value)


def _pair(size: int | tuple[int, int], what: str) -> tuple[int, int]:
    """(height, width) of a patch size or stride given as one number or a pair.

    Raises:
        ConfigError: `size` is not a positive integer or a pair of them (the message names the argument `what`).
    """
    pair = tuple(size) if isinstance(size, tuple | list) else (size, size)
    if len(pair) != 2 or not all(_whole(value, 1) for value in pair):
        raise ConfigError(f"{what}={size!r} must be positive whole pixel counts, e.g. {what}=256 or (256, 256)")
    return int(pair[0]), int(pair[1])


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world size): the given ones, else torch.distributed's when initialized, else (0, 1).

    Raises:
        ConfigError: only one of rank and world size is given, or the rank is outside the world.
    """
    if rank is None and world_size is None:
        ready = torch.distributed.is_available() and torch.distributed.is_initialized()
        return (torch.distributed.get_rank(), torch.distributed.get_world_size()) if ready else (0, 1)
    if rank is None or world_size is None:
        given, missing = ("rank", "world_size") if world_size is None else ("world_size", "rank")
        raise ConfigError(
            f"{given}={rank if world_size is None else world_size} without {missing}; pass both or neither "
            "(neither takes them from torch.distributed)"
        )
    rank, world_size = _count(rank, "rank", 0), _count(world_size, "world_size", 1)
    if rank >= world_size:
        raise ConfigError(f"rank={rank} is outside 0..{world_size - 1} for world_size={world_size}")
    return rank, world_size


def _start_covering(rng: np.random.Generator, pixel: int, size: int, extent: int) -> int:
    """A random window start, within [0, extent - size], whose window of `size` covers `pixel`."""
    low, high = max(pixel - size + 1, 0), min(pixel, max(extent - size, 0))
    return int(rng.integers(low, high + 1)) if high >= low else max(extent - size, 0)


class ValidityMap:
    """Where a tile holds data, on a coarse grid: a patch is worth reading when any of its cells is valid.

    Built from a decimated read of the image (one sample per cell), only for tiles with a no-data value or warped
    edges; other tiles (or all, when not `enabled`) are valid everywhere.

    Args:
        dataset: the dataset.
        tile: tile index.
        cell: cell size in pixels.
        enabled: False treats the whole tile as valid without reading it.
    """

    def __init__(self, dataset: TiledSegmentationDataset, tile: int, cell: int, enabled: bool = True) -> None:
        source = dataset.tiles[tile]
        self.cell = cell
        self.cells: npt.NDArray[np.bool_] | None = None
        if not enabled or (source.nodata is None and not source.warp):
            return
        shape = (math.ceil(source.height / cell), math.ceil(source.width / cell))
        handle = dataset._handle(tile, label=False)
        valid = np.ones(shape, dtype=bool)
        whole = Window(0, 0, source.width, source.height)
        if source.nodata is not None:
            out_shape = (len(source.image_bands), *shape)
            image = read_window(handle, source.image_bands, whole, source.files.image, out_shape=out_shape)
            valid &= ~nodata_values(image, source.nodata).all(axis=0)
        if source.warp:
            mask = read_window(
                handle, 1, whole, source.files.image, masks=True, out_shape=shape, resampling=Resampling.nearest
            )
            valid &= mask > 0
        self.cells = valid

    def area(self, tile_height: int, tile_width: int) -> float:
        """Pixels with data, approximately."""
        if self.cells is None:
            return float(tile_height * tile_width)
        return float(self.cells.sum()) * self.cell**2

    def draw(
        self, rng: np.random.Generator, tile_height: int, tile_width: int, height: int, width: int
    ) -> tuple[int, int]:
        """Top-left (row, col) of a random window inside the tile that touches a valid cell."""
        if self.cells is None:
            row = int(rng.integers(0, max(tile_height - height, 0) + 1))
            return row, int(rng.integers(0, max(tile_width - width, 0) + 1))
        cell_row, cell_col = np.divmod(int(rng.choice(np.flatnonzero(self.cells))), self.cells.shape[1])
        pixel_row = min(cell_row * self.cell + int(rng.integers(self.cell)), tile_height - 1)
        pixel_col = min(cell_col * self.cell + int(rng.integers(self.cell)), tile_width - 1)
        return _start_covering(rng, pixel_row, height, tile_height), _start_covering(rng, pixel_col, width, tile_width)

    def has_data(self, row: int, col: int, height: int, width: int) -> bool:
        """True when the window touches a valid cell."""
        if self.cells is None:
            return True
        top, left = max(row, 0) // self.cell, max(col, 0) // self.cell
        bottom, right = math.ceil((row + height) / self.cell), math.ceil((col + width) / self.cell)
        return bool(self.cells[top:bottom, left:right].any())


class _PatchSampler(Sampler[PatchWindow]):
    """What both samplers share: patch size, DDP shard, epoch and the validity maps."""

    def __init__(
        self,
        dataset: TiledSegmentationDataset,
        size: int | tuple[int, int],
        rank: int | None,
        world_size: int | None,
        skip_nodata: bool,
    ) -> None:
        self.dataset = dataset
        self.size = _pair(size, "size")
        self.rank, self.world_size = _distributed(rank, world_size)
        self.epoch = 0
        cell = max(1, min(self.size) // 4)
        self.validity = [ValidityMap(dataset, tile, cell, skip_nodata) for tile in range(len(dataset.tiles))]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch: each epoch gets its own reproducible patches (Lightning calls this)."""
        self.epoch = epoch

    def _has_data(self, window: PatchWindow) -> bool:
        return self.validity[window.tile].has_data(window.row, window.col, window.height, window.width)


class RandomPatchSampler(_PatchSampler):
    """Random patches, tiles chosen by their area with data, no patch drawn twice in an epoch, none that holds only
    no-data (on the validity map's grid).

    Every rank draws the same global sequence for an epoch (seeded by `seed` and the epoch) and keeps every
    `world_size`-th patch from its `rank`, so ranks see disjoint patches. Patches lie inside their tile; a tile
    smaller than the patch gives one padded patch (ignored pixels).

    The sampler shards itself and needs `set_epoch` each epoch: with Lightning, pass
    `Trainer(use_distributed_sampler=False)` so that Lightning neither wraps it in a `DistributedSampler` nor
    shards it twice (Lightning still calls `set_epoch`).

    Args:
        dataset: a cmt-geo dataset.
        size: patch (height, width) in pixels, or one number for both.
        length: patches per epoch per rank; about the number of non-overlapping patches over all tiles when None.
        seed: seeds the draws.
        rank: this process's rank; torch.distributed's (0 when not initialized) when both are None.
        world_size: number of ranks; torch.distributed's (1 when not initialized) when both are None.
        skip_nodata: redraw patches that hold only no-data.
        exclude: areas (xmin, ymin, xmax, ymax) in dataset coordinates that no patch may touch, e.g. validation
            blocks grown by their gap (`SpatialBlocks.exclusion()`).
    """

    def __init__(
        self,
        dataset: TiledSegmentationDataset,
        size: int | tuple[int, int],
        length: int | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        skip_nodata: bool = True,
        exclude: Sequence[Box] = (),
    ) -> None:
        super().__init__(dataset, size, rank, world_size, skip_nodata)
        height, width = self.size
        self.seed = _count(seed, "seed", 0)
        self.excluded = [pixel_rects(t.transform, t.height, t.width, exclude) for t in dataset.tiles]
        tiles = dataset.tiles
        self.areas = np.array([v.area(t.height, t.width) for v, t in zip(self.validity, tiles, strict=True)])
        if not self.areas.sum():
            raise ConfigError("every tile holds only no-data; check the no-data value or pass skip_nodata=False")
        if length is None:
            total = sum(max(1, tile.height // height) * max(1, tile.width // width) for tile in tiles)
            length = math.ceil(total / self.world_size)
        self.length = _count(length, "length", 1)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[PatchWindow]:
        rng = np.random.default_rng([self.seed, self.epoch])
        weights = self.areas / self.areas.sum()
        wanted = self.length * self.world_size
        drawn: set[PatchWindow] = set()
        for index in range(wanted):
            window = self._draw(rng, weights)
            for _ in range(_MAX_TRIES):
                if window not in drawn:
                    break
                window = self._draw(rng, weights)
            drawn.add(window)
            if index % self.world_size == self.rank:
                yield window

    def _draw(self, rng: np.random.Generator, weights: npt.NDArray[np.float64]) -> PatchWindow:
        height, width = self.size
        for _ in range(_MAX_TRIES * 20):
            tile = int(rng.choice(len(weights), p=weights))
            source = self.dataset.tiles[tile]
            row, col = self.validity[tile].draw(rng, source.height, source.width, height, width)
            if not any(
                row < bottom and top < row + height and col < right and left < col + width
                for top, left, bottom, right in self.excluded[tile]
            ):
                return PatchWindow(tile, row, col, height, width)
        raise ConfigError(
            f"no {height}x{width} patch fits between the excluded areas (validation blocks and their gap); use "
            "smaller patches, a smaller gap or larger validation blocks"
        )


class GridPatchSampler(_PatchSampler):
    """Patches on a regular grid over every tile, for validation; the last row and column sit flush with the edge.

    Windows are dealt round-robin to ranks. With `even_shards` every rank gets the same count (some windows are
    repeated at the end, as `DistributedSampler` does), which DDP needs so that no rank waits forever.

    The sampler shards itself: with Lightning, pass `Trainer(use_distributed_sampler=False)` so that Lightning does
    not wrap it in a `DistributedSampler` and shard it twice.

    Args:
        dataset: a cmt-geo dataset.
        size: patch (height, width) in pixels, or one number for both.
        stride: step between windows; `size` (no overlap) when None.
        rank: this process's rank; torch.distributed's (0 when not initialized) when both are None.
        world_size: number of ranks; torch.distributed's (1 when not initialized) when both are None.
        even_shards: give every rank the same number of windows.
        skip_nodata: leave out windows that hold only no-data.
        within: lay the grid over these areas (xmin, ymin, xmax, ymax) in dataset coordinates instead of over whole
            tiles, e.g. validation blocks (`SpatialBlocks.boxes`); windows stay inside an area larger than a window.

    Attributes:
        distinct: the number of different windows over all ranks (with `even_shards`, the windows after them repeat
            earlier ones: rank r's i-th window is a repeat when r + i * world_size >= distinct).
    """

    def __init__(
        self,
        dataset: TiledSegmentationDataset,
        size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        even_shards: bool = True,
        skip_nodata: bool = True,
        within: Sequence[Box] | None = None,
    ) -> None:
        super().__init__(dataset, size, rank, world_size, skip_nodata)
        height, width = self.size
        step_y, step_x = _pair(stride, "stride") if stride is not None else self.size
        windows = []
        for index, tile in enumerate(dataset.tiles):
            whole = [(0, 0, tile.height, tile.width)]
            areas = whole if within is None else pixel_rects(tile.transform, tile.height, tile.width, within)
            for top, left, bottom, right in areas:
                windows += [
                    PatchWindow(index, top + row, left + col, height, width)
                    for row in grid_starts(bottom - top, height, step_y)
                    for col in grid_starts(right - left, width, step_x)
                ]
        windows = [window for window in windows if self._has_data(window)]
        self.distinct = len(windows)
        if even_shards and windows:
            total = math.ceil(len(windows) / self.world_size) * self.world_size
            windows = (windows * math.ceil(total / len(windows)))[:total]
        self.windows = windows[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.windows)

    def __iter__(self) -> Iterator[PatchWindow]:
        return iter(self.windows)
