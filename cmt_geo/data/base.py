"""The base of every cmt-geo dataset: a TorchGeo `GeoDataset` that streams image and mask windows from tiles."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
import torch
from affine import Affine
from geopandas import GeoDataFrame
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.windows import Window
from torchgeo.datasets import GeoDataset
from torchgeo.datasets.utils import GeoSlice

from cmt_geo.data.labels import IGNORE_INDEX, RGB, LabelCoding
from cmt_geo.data.splits import carving_warning, check_split, describe_splits, split_tiles
from cmt_geo.data.tiles import CheckOptions, CheckPlan, LayoutPaths, Problem, Tile, TileFiles, inspect_tiles
from cmt_geo.errors import ConfigError, DatasetNotFoundError, IndexTypeError, InvalidRasterError
from cmt_geo.io.raster import RasterInfo, nodata_values, open_raster, read_window

logger = logging.getLogger(__name__)

Sample = dict[str, Any]
SampleTransform = Callable[[Sample], Sample]


@dataclass(frozen=True)
class SplitOptions:
    """How the validation split is carved from the official training tiles.

    Args:
        val_fraction: share of training tiles (or sequences) that become validation tiles.
        val_tiles: explicit validation tiles (or sequences); overrides `val_fraction`.
        seed: seeds the carving.
        test_source: the official split that serves as the test split.
    """

    val_fraction: float = 0.125
    val_tiles: Sequence[str] | None = None
    seed: int = 0
    test_source: str = "test"


class PatchWindow(NamedTuple):
    """A patch in pixel units of one tile: what cmt-geo's samplers yield and its datasets read directly."""

    tile: int
    row: int
    col: int
    height: int
    width: int


def check_command(dataset: str, root: object, labels: object = None) -> str:
    """How to list every problem of a dataset: the `cmtgeo data check` command and the Python call."""
    flags = "" if labels is None else f" --labels {labels}"
    options = "" if labels is None else f", CheckOptions(labels={str(labels)!r})"
    return (
        f"`cmtgeo data check --dataset {dataset} {root}{flags}` "
        f"(Python: `cmt_geo.data.check_dataset({dataset!r}, {str(root)!r}{options})`)"
    )


def raise_fatal(problems: Sequence[Problem], command: str) -> None:
    """Raise the first fatal problem as its error, saying how many more there are and the `command` that lists them."""
    fatal = [problem for problem in problems if problem.fatal]
    if not fatal:
        return
    error = fatal[0].error()
    if len(fatal) > 1:
        error.args = (f"{error.args[0]} ({len(fatal) - 1} more problems: run {command} to list them all)",)
    raise error


def layout_tiles(
    usable: Sequence[tuple[TileFiles, RasterInfo]],
    crs: CRS | None = None,
    res: tuple[float, float] | None = None,
    georeferenced: bool = False,
) -> tuple[list[Tile], CRS | None, tuple[float, float]]:
    """Place tiles in a dataset coordinate space.

    Ungeoreferenced tiles (or `georeferenced=False`) are laid side by side in pixel space (resolution 1, no CRS).
    Georeferenced tiles keep their coordinates in `crs` (default: the first tile's) at `res` (default: the first
    tile's, converted to `crs` units when the CRS differs); a tile in another CRS or resolution is warped on the fly,
    with a warning naming it.

    Returns:
        The tiles, the dataset CRS, and its (x, y) resolution.

    Raises:
        InvalidRasterError: some rasters are georeferenced and others are not.
    """
    if not georeferenced or not any(info.georeferenced for _, info in usable):
        tiles, offset = [], 0
        for files, info in usable:
            bands = files.image_bands or tuple(range(1, info.count + 1))
            transform = Affine(1.0, 0.0, float(offset), 0.0, -1.0, 0.0)
            tiles.append(Tile(files, info.height, info.width, transform, bands, info.nodata))
            offset += info.width
        return tiles, None, (1.0, 1.0)
    plain = [files.image for files, info in usable if not info.georeferenced]
    if plain:
        raise InvalidRasterError(
            f"{plain[0]} has no georeferencing while other rasters do; georeference it or use only ungeoreferenced "
            "rasters"
        )
    first = usable[0][1]
    target_crs = crs or first.crs
    if res is not None:
        target_res = res
    elif target_crs == first.crs:
        target_res = _resolution(first.transform)
    else:
        target_res = _resolution(_warped_grid(first, target_crs)[0])
    tiles = []
    for files, info in usable:
        bands = files.image_bands or tuple(range(1, info.count + 1))
        if info.crs == target_crs and np.allclose(_resolution(info.transform), target_res, rtol=1e-6, atol=0):
            tiles.append(Tile(files, info.height, info.width, info.transform, bands, info.nodata))
            continue
        transform, width, height = _warped_grid(info, target_crs, target_res)
        logger.warning(
            "%s is in %s and is warped on the fly to the dataset's %s; reproject it beforehand, or choose the "
            "dataset grid with crs= and res=",
            files.image,
            _grid_name(info.crs, _resolution(info.transform)),
            _grid_name(target_crs, target_res),
        )
        tiles.append(Tile(files, height, width, transform, bands, info.nodata, warp=True))
    return tiles, target_crs, target_res


def _resolution(transform: Affine) -> tuple[float, float]:
    return abs(transform.a), abs(transform.e)


def _grid_name(crs: CRS, res: tuple[float, float]) -> str:
    """A CRS and resolution as people read them, e.g. "EPSG:3435 at 10 x 10 US survey foot"."""
    units = crs.linear_units if crs.is_projected else "degree"
    return f"{crs.to_string()} at {res[0]:.6g} x {res[1]:.6g} {units}"


def _warped_grid(info: RasterInfo, crs: CRS, res: tuple[float, float] | None = None) -> tuple[Affine, int, int]:
    """Transform, width and height of a raster warped to `crs` at `res` (GDAL's choice, about as many pixels, when
    None)."""
    xmin, ymax = info.transform @ (0, 0)
    xmax, ymin = info.transform @ (info.width, info.height)
    transform, width, height = calculate_default_transform(
        info.crs, crs, info.width, info.height, xmin, ymin, xmax, ymax, resolution=res
    )
    return transform, int(width), int(height)


def load_split(
    found: Sequence[TileFiles],
    problems: Sequence[Problem],
    *,
    split: str,
    options: SplitOptions,
    label_bands: int,
    dataset: str,
    root: object,
    labels: object = None,
    **placement: Any,
) -> tuple[list[Tile], CRS | None, tuple[float, float]]:
    """Choose a split's tiles, inspect them, raise on the first real problem, and place them (see `layout_tiles`).

    Problems of other official splits do not stop loading this one; warnings are logged. Which tiles went to which
    split is logged (INFO), with a warning when carving validation leaves train or val empty or takes one of only
    two training tiles. `dataset`, `root` and `labels` make the `cmtgeo data check` command that errors point to
    (see `check_command`).

    Raises:
        ConfigError: an unknown split, or bad split options.
    """
    check_split(split)
    splits = split_tiles(found, options.val_fraction, options.val_tiles, options.seed, options.test_source)
    logger.info("%s splits in %s: %s", dataset, root, describe_splits(splits))
    carving = bool(options.val_tiles) if options.val_tiles is not None else options.val_fraction > 0
    warning = carving_warning(splits) if carving and split != "test" else None
    if warning is not None:
        logger.warning("%s: %s", root, warning)
    chosen = splits[split]
    source = options.test_source if split == "test" else "train"
    usable, header_problems = inspect_tiles(chosen, label_bands)
    relevant = [problem for problem in problems if problem.split in (None, source)]
    command = check_command(dataset, root, labels)
    raise_fatal([*relevant, *header_problems], command)
    for problem in relevant:
        logger.warning("%s: %s", problem.path, problem.message)
    if not usable:
        raise DatasetNotFoundError(
            f"no {split} tiles in {str(root)!r}; check the folder layout ({command}) or the split options"
        )
    return layout_tiles(usable, **placement)


class TiledSegmentationDataset(GeoDataset):
    """Image and mask windows streamed from a set of tiles, indexable by `PatchWindow` or TorchGeo `GeoSlice`.

    Samples hold "image" (C, H, W) float32 (no-data values and padding read as 0), "mask" (H, W) int64 class
    indices with `IGNORE_INDEX` where there is no label (no-data, eroded boundaries, outside the tiles), "bounds" and
    "transform" as TorchGeo lays them out but in float64 (float32 rounds UTM northings to the metre).
    Only the asked window is read from each file; file handles are opened once per worker process.

    Args:
        tiles: the tiles, placed in the dataset's coordinate space.
        label_coding: how label rasters store classes; None when there are no label rasters.
        band_names: names of the image bands returned, in order.
        crs: the dataset CRS, None for pixel space.
        res: (x, y) resolution in CRS units (1 in pixel space).
        transforms: applied to every sample.
        compact: keep the image in its stored dtype (e.g. uint8) and the mask as uint8 instead of float32 and
            int64: five times fewer bytes from loader workers to the trainer; convert on the GPU
            (`GpuAugmentation` does).
    """

    #: Dataset name as `cmtgeo data` spells it.
    name: ClassVar[str] = "raster"
    #: Class names; the mask holds their indices.
    classes: tuple[str, ...] = ()
    #: One RGB colour per class, for plots and exported labels.
    colors: tuple[RGB, ...] = ()
    #: Classes the benchmark protocol scores (all when None); ISPRS leaves out clutter.
    scored_classes: ClassVar[tuple[int, ...] | None] = None

    def __init__(
        self,
        tiles: Sequence[Tile],
        label_coding: LabelCoding | None,
        band_names: Sequence[str],
        *,
        crs: CRS | None = None,
        res: tuple[float, float] = (1.0, 1.0),
        transforms: SampleTransform | None = None,
        compact: bool = False,
    ) -> None:
        self.tiles = tuple(tiles)
        self.compact = compact
        self.label_coding = label_coding
        self.band_names = tuple(band_names)
        self.transforms = transforms
        self.paths = [tile.files.image for tile in self.tiles]
        self._res = res
        self._warp_crs = crs
        count = len(self.tiles)
        index = pd.IntervalIndex.from_tuples(
            [(pd.Timestamp.min, pd.Timestamp.max)] * count, closed="both", name="datetime"
        )
        self.index = GeoDataFrame(
            {"tile": [tile.files.name for tile in self.tiles], "filepath": [str(p) for p in self.paths]},
            index=index,
            geometry=[shapely.box(*tile.bounds) for tile in self.tiles],
            crs=crs,
        )
        self._tile_bounds = np.array([tile.bounds for tile in self.tiles], dtype=np.float64).reshape(count, 4)
        self._handles: dict[tuple[str, bool], Any] = {}
        self._handles_pid = os.getpid()
        self._bounds = super().bounds

    @classmethod
    def scan(cls, root: Path) -> tuple[list[TileFiles], list[Problem]]:
        """Every tile found in a dataset folder, and the problems of its layout."""
        raise NotImplementedError(f"{cls.__name__} has no folder layout to scan")

    @classmethod
    def label_coding_of(cls, unknown: Literal["error", "ignore"] = "error") -> LabelCoding:
        """How the dataset's label rasters store its classes."""
        raise NotImplementedError(f"{cls.__name__} has no fixed label coding")

    @classmethod
    def layout_paths(cls, name: str, split: str) -> LayoutPaths:
        """Where the files of tile `name` of `split` go in the dataset's layout (what `write_synthetic` writes)."""
        raise NotImplementedError(f"{cls.__name__} has no folder layout")

    @classmethod
    def plan_check(cls, root: Path, options: CheckOptions) -> CheckPlan:
        """What `check_dataset` verifies in `root`: here every tile `scan` finds, for datasets without options."""
        options.refuse(cls.name, *(field.name for field in dataclasses.fields(CheckOptions)))
        found, problems = cls.scan(root)
        return CheckPlan(found, problems=problems, coding=cls.label_coding_of(), classes=cls.classes)

    @property
    def bounds(self) -> tuple[slice, slice, slice]:
        """Bounding x, y and t slices of all tiles (computed once: the tiles never move)."""
        return self._bounds

    @property
    def files(self) -> list[str]:
        """Image files of the dataset, sorted."""
        return sorted(str(tile.files.image) for tile in self.tiles)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __getitem__(self, index: PatchWindow | GeoSlice) -> Sample:
        """The sample at a pixel window of one tile, or at a spatial slice (TorchGeo's indexing).

        Raises:
            IndexTypeError: the index is neither a `PatchWindow` nor a `GeoSlice` (e.g. an int, as a `DataLoader`
                without a sampler gives).
            IndexError: the window or slice does not touch any tile.
            ConfigError: the slice asks for another resolution than the dataset's.
        """
        if isinstance(index, PatchWindow):
            image, mask = self._read_patch(index)
            tile = self.tiles[index.tile]
            x0, y0 = tile.transform @ (index.col, index.row)
            x1, y1 = tile.transform @ (index.col + index.width, index.row + index.height)
            geoslice: GeoSlice = (
                slice(min(x0, x1), max(x0, x1), self.res[0]),
                slice(min(y0, y1), max(y0, y1), self.res[1]),
            )
        elif isinstance(index, slice) or (isinstance(index, tuple) and all(isinstance(i, slice) for i in index)):
            geoslice = index
            image, mask = self._read_slice(index)
        else:
            raise IndexTypeError(
                f"{type(self).__name__} is indexed by a PatchWindow(tile, row, col, height, width) or a GeoSlice, "
                f"not {index!r}; or let a sampler choose: DataLoader(dataset, sampler=RandomPatchSampler(dataset, 256))"
            )
        x, y, _ = self._disambiguate_slice(geoslice)
        transform = Affine(x.step, 0.0, x.start, 0.0, -y.step, y.stop)
        if not self.compact:
            image, mask = image.astype(np.float32, copy=False), mask.astype(np.int64)
        sample: Sample = {
            "image": torch.from_numpy(image),
            "mask": torch.from_numpy(mask),
            "bounds": self._slice_to_tensor(geoslice),
            "transform": torch.tensor(tuple(transform)[:6], dtype=torch.float64),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _slice_to_tensor(self, index: GeoSlice) -> torch.Tensor:
        """TorchGeo's [xmin, xmax, xres, ymin, ymax, yres, tmin, tmax, tres] of a slice, in float64."""
        x, y, t = self._disambiguate_slice(index)
        bounds = [x.start, x.stop, x.step, y.start, y.stop, y.step, t.start.timestamp(), t.stop.timestamp(), t.step]
        return torch.tensor(bounds, dtype=torch.float64)

    def _read_patch(self, window: PatchWindow) -> tuple[npt.NDArray[Any], npt.NDArray[np.uint8]]:
        if not 0 <= window.tile < len(self.tiles):
            raise IndexError(f"tile {window.tile} is out of range; the dataset has {len(self.tiles)} tiles")
        tile = self.tiles[window.tile]
        inside = (
            window.row >= 0
            and window.col >= 0
            and window.row + window.height <= tile.height
            and window.col + window.width <= tile.width
        )
        if inside:
            return self._read_tile_window(window.tile, Window(window.col, window.row, window.width, window.height))
        image, mask = self._blank(window.tile, window.height, window.width)
        if not self._paste(window.tile, window.row, window.col, image, mask):
            raise IndexError(f"window {window} does not overlap tile {tile.files.name} ({tile.width}x{tile.height})")
        return image, mask

    def _read_slice(self, index: GeoSlice) -> tuple[npt.NDArray[Any], npt.NDArray[np.uint8]]:
        x, y, _ = self._disambiguate_slice(index)
        if not np.allclose((x.step, y.step), self.res):
            raise ConfigError(
                f"slice resolution {(x.step, y.step)} differs from the dataset's {self.res}; "
                "slice at the dataset resolution (leave the step out)"
            )
        height = round((y.stop - y.start) / y.step)
        width = round((x.stop - x.start) / x.step)
        xmin, ymin, xmax, ymax = self._tile_bounds.T
        hits = np.flatnonzero((xmin < x.stop) & (xmax > x.start) & (ymin < y.stop) & (ymax > y.start))
        if hits.size == 0:
            raise IndexError(f"index {index} is not within the dataset bounds {self.bounds}")
        image, mask = self._blank(int(hits[0]), height, width)
        for hit in hits:
            col, row = ~self.tiles[hit].transform @ (x.start, y.stop)
            self._paste(int(hit), round(row), round(col), image, mask)
        return image, mask

    def _blank(self, tile: int, height: int, width: int) -> tuple[npt.NDArray[Any], npt.NDArray[np.uint8]]:
        image = np.zeros((len(self.tiles[tile].image_bands), height, width), dtype=self._dtype(tile))
        return image, np.full((height, width), IGNORE_INDEX, dtype=np.uint8)

    def _paste(self, tile: int, row: int, col: int, image: npt.NDArray[Any], mask: npt.NDArray[np.uint8]) -> bool:
        """Read the part of tile `tile` under a window whose top-left is (row, col) into the canvases."""
        source = self.tiles[tile]
        height, width = mask.shape
        top, left = max(row, 0), max(col, 0)
        bottom, right = min(row + height, source.height), min(col + width, source.width)
        if bottom <= top or right <= left:
            return False
        part_image, part_mask = self._read_tile_window(tile, Window(left, top, right - left, bottom - top))
        rows = slice(top - row, bottom - row)
        cols = slice(left - col, right - col)
        image[:, rows, cols] = part_image
        mask[rows, cols] = part_mask
        return True

    def _read_tile_window(self, tile: int, window: Window) -> tuple[npt.NDArray[Any], npt.NDArray[np.uint8]]:
        """Image (C, h, w) in its stored dtype (no-data values read as 0) and mask (h, w) of a window inside a tile."""
        source = self.tiles[tile]
        handle = self._handle(tile, label=False)
        image = read_window(handle, source.image_bands, window, source.files.image)
        mask = self._read_label(tile, window)
        nodata = nodata_values(image, source.nodata)
        mask[nodata.all(axis=0)] = IGNORE_INDEX
        image[nodata] = 0
        if source.warp:
            mask[read_window(handle, 1, window, source.files.image, masks=True) == 0] = IGNORE_INDEX
        return image, mask

    def _read_label(self, tile: int, window: Window) -> npt.NDArray[np.uint8]:
        """Class indices (h, w) of a window inside one tile; `IGNORE_INDEX` everywhere for an unlabelled tile."""
        source = self.tiles[tile]
        if source.files.label is None or self.label_coding is None:
            return np.full((int(window.height), int(window.width)), IGNORE_INDEX, dtype=np.uint8)
        bands = list(range(1, self.label_coding.bands + 1))
        raw = read_window(self._handle(tile, label=True), bands, window, source.files.label)
        return self.label_coding.decode(raw, source.files.label)

    def _dtype(self, tile: int) -> np.dtype[Any]:
        return np.dtype(self._handle(tile, label=False).dtypes[0])

    def _handle(self, tile: int, label: bool) -> Any:
        """An open reader of a tile's image or label raster, cached per process (handles do not survive a fork)."""
        if self._handles_pid != os.getpid():
            self._handles, self._handles_pid = {}, os.getpid()
        source = self.tiles[tile]
        path = source.files.label if label else source.files.image
        if path is None:
            raise DatasetNotFoundError(f"tile {source.files.name} has no label file; it cannot give a mask")
        key = (str(path), label)
        handle = self._handles.get(key)
        if handle is None:
            handle = open_raster(path)
            if source.warp:
                resampling = Resampling.nearest if label else Resampling.bilinear
                handle = WarpedVRT(
                    handle,
                    crs=self._warp_crs,
                    transform=source.transform,
                    width=source.width,
                    height=source.height,
                    resampling=resampling,
                )
            self._handles[key] = handle
        return handle

    def color_table(self) -> npt.NDArray[np.uint8]:
        """(256, 3) uint8 RGB colour of each mask value; `IGNORE_INDEX` and unused values are black."""
        table = np.zeros((256, 3), dtype=np.uint8)
        if self.colors:
            table[: len(self.colors)] = np.array(self.colors, dtype=np.uint8)
        return table

    def plot(self, sample: Sample, show_titles: bool = True, suptitle: str | None = None) -> Any:
        """Draw image | mask | prediction (when the sample has one) with the dataset's class colours.

        Args:
            sample: a sample, optionally with a "prediction" (H, W) class-index tensor.
            show_titles: title each panel.
            suptitle: a title over the figure.

        Returns:
            The matplotlib figure.
        """
        import matplotlib.pyplot as plt

        table = self.color_table()
        panels = [("Image", _display_rgb(sample["image"]))]
        panels.append(("Mask", table[sample["mask"].numpy().astype(np.int64).clip(0, 255)]))
        if "prediction" in sample:
            panels.append(("Prediction", table[sample["prediction"].numpy().astype(np.int64).clip(0, 255)]))
        figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
        for axis, (title, picture) in zip(axes[0], panels, strict=True):
            axis.imshow(picture)
            axis.axis("off")
            if show_titles:
                axis.set_title(title)
        if suptitle is not None:
            figure.suptitle(suptitle)
        return figure


def _display_rgb(image: torch.Tensor) -> npt.NDArray[np.float64]:
    """An (H, W, 3) picture in [0, 1] of the first three bands of a (C, H, W) image, stretched to its 2–98 %."""
    array = image.detach().cpu().numpy().astype(np.float64)
    array = np.concatenate([array] * 3)[:3] if array.shape[0] < 3 else array[:3]
    low, high = np.percentile(array, (2, 98), axis=(1, 2), keepdims=True)
    return np.moveaxis(np.clip((array - low) / np.maximum(high - low, 1e-9), 0, 1), 0, -1)
