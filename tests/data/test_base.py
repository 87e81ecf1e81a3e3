"""The streaming dataset base: pixel windows and TorchGeo slices agree, padding, workers, compact samples."""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.transform import from_origin
from torch.utils.data import DataLoader
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from cmt_geo.data import (
    IGNORE_INDEX,
    PatchWindow,
    Potsdam,
    RandomPatchSampler,
    RasterSegmentation,
    SplitOptions,
    Vaihingen,
)
from cmt_geo.data.splits import carve_validation
from cmt_geo.errors import ConfigError, IndexTypeError, InvalidRasterError

from .conftest import nan_nodata_raster

ALL = SplitOptions(val_fraction=0)
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


@pytest.fixture
def potsdam(pristine: Callable[[str], Path]) -> Potsdam:
    return Potsdam(pristine("potsdam"), split_options=ALL)


def test_a_geo_slice_reads_the_same_pixels_as_its_window(potsdam: Potsdam) -> None:
    by_window = potsdam[PatchWindow(1, 8, 16, 24, 20)]
    bounds = by_window["bounds"].tolist()
    by_slice = potsdam[slice(bounds[0], bounds[1]), slice(bounds[3], bounds[4])]
    assert torch.equal(by_slice["image"], by_window["image"])
    assert torch.equal(by_slice["mask"], by_window["mask"])
    assert torch.equal(by_slice["transform"], by_window["transform"])


def test_a_slice_across_two_tiles_is_stitched(potsdam: Potsdam) -> None:
    left, right = potsdam.tiles[0], potsdam.tiles[1]
    assert left.bounds[2] == pytest.approx(right.bounds[0])  # neighbours in the fixture
    xmid, ymax, step = left.bounds[2], left.bounds[3], potsdam.res[0]
    sample = potsdam[slice(xmid - 10 * step, xmid + 10 * step), slice(ymax - 20 * step, ymax)]
    assert sample["image"].shape == (3, 20, 20)
    assert torch.equal(sample["image"][:, :, :10], potsdam[PatchWindow(0, 0, 38, 20, 10)]["image"])
    assert torch.equal(sample["image"][:, :, 10:], potsdam[PatchWindow(1, 0, 0, 20, 10)]["image"])


def test_outside_windows_are_padded_and_ignored(potsdam: Potsdam) -> None:
    sample = potsdam[PatchWindow(0, -4, 40, 16, 16)]
    assert sample["image"].shape == (3, 16, 16)
    assert (sample["mask"][:4] == IGNORE_INDEX).all()
    assert (sample["mask"][:, 8:] == IGNORE_INDEX).all()
    assert (sample["image"][:, :4] == 0).all()
    assert (sample["mask"][4:, :8] != IGNORE_INDEX).all()
    with pytest.raises(IndexError, match="does not overlap tile"):
        potsdam[PatchWindow(0, 100, 100, 8, 8)]
    with pytest.raises(IndexError, match="out of range"):
        potsdam[PatchWindow(9, 0, 0, 8, 8)]


def test_slices_outside_or_at_another_resolution_are_refused(potsdam: Potsdam) -> None:
    x, y, _ = potsdam.bounds
    with pytest.raises(IndexError, match="not within the dataset bounds"):
        potsdam[slice(x.stop + 10, x.stop + 11), slice(y.start, y.start + 1)]
    with pytest.raises(ConfigError, match="slice resolution"):
        potsdam[slice(x.start, x.start + 1, 0.1), slice(y.start, y.start + 1, 0.1)]


def test_torchgeo_samplers_index_cmt_geo_datasets(potsdam: Potsdam) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        random = list(RandomGeoSampler(potsdam, size=16, length=5))
        grid = list(GridGeoSampler(potsdam, size=16, stride=16))
    for index in [*random, *grid]:
        sample = potsdam[index]
        assert sample["image"].shape == (3, 16, 16)
        assert (sample["mask"] != IGNORE_INDEX).all()


def test_compact_samples_keep_stored_dtypes(pristine: Callable[[str], Path]) -> None:
    root = pristine("vaihingen")
    plain = Vaihingen(root, split_options=ALL)[PatchWindow(0, 0, 0, 8, 8)]
    compact = Vaihingen(root, split_options=ALL, compact=True)[PatchWindow(0, 0, 0, 8, 8)]
    assert compact["image"].dtype == torch.uint8
    assert compact["mask"].dtype == torch.uint8
    assert torch.equal(compact["image"].float(), plain["image"])
    assert torch.equal(compact["mask"].long(), plain["mask"])


def test_datasets_pickle_and_load_in_worker_processes(potsdam: Potsdam) -> None:
    potsdam[PatchWindow(0, 0, 0, 8, 8)]  # opens handles in this process
    clone = pickle.loads(pickle.dumps(potsdam))
    assert torch.equal(clone[PatchWindow(2, 0, 0, 8, 8)]["image"], potsdam[PatchWindow(2, 0, 0, 8, 8)]["image"])
    sampler = RandomPatchSampler(potsdam, 16, length=12, seed=0)
    loader = DataLoader(potsdam, batch_size=4, sampler=sampler, num_workers=2)
    batches = list(loader)
    assert [tuple(b["image"].shape) for b in batches] == [(4, 3, 16, 16)] * 3
    expected = torch.stack([potsdam[window]["image"] for window in sampler])
    assert torch.equal(torch.cat([b["image"] for b in batches]), expected)


def test_nan_nodata_is_ignored_and_read_as_zero(tmp_path: Path) -> None:
    dataset = nan_nodata_raster(tmp_path)
    sample = dataset[PatchWindow(0, 8, -4, 16, 16)]  # half no-data, a 4-column strip of padding on the left
    assert torch.isfinite(sample["image"]).all()
    assert (sample["image"][:, :8] == 0).all()
    assert (sample["image"][:, :, :4] == 0).all()
    assert (sample["mask"][:8] == IGNORE_INDEX).all()
    assert (sample["mask"][:, :4] == IGNORE_INDEX).all()
    assert (sample["mask"][8:, 4:] == 1).all()
    assert (sample["image"][:, 8:, 4:] == 0.5).all()


def _write(path: Path, image: npt.NDArray[Any], crs: str, transform: Affine, **profile: Any) -> Path:
    """Write a (C, H, W) array as a tiled, deflate-compressed GeoTIFF (blocks of 16 pixels)."""
    count, height, width = image.shape
    tiled = {"tiled": True, "blockxsize": 16, "blockysize": 16, "compress": "deflate"}
    options = {"count": count, "height": height, "width": width, "dtype": image.dtype.name, **tiled, **profile}
    with rasterio.open(path, "w", driver="GTiff", crs=crs, transform=transform, **options) as dst:
        dst.write(image)
    return path


def _labelled(folder: Path, image: npt.NDArray[Any], crs: str, transform: Affine, **profile: Any) -> RasterSegmentation:
    """A one-raster dataset of `image`, labelled with random classes 0 and 1."""
    (folder / "labels").mkdir()
    _write(folder / "a.tif", image, crs, transform, **profile)
    classes = np.random.default_rng(0).integers(0, 2, (1, *image.shape[1:]), dtype=np.uint8)
    _write(folder / "labels" / "a.tif", classes, crs, transform)
    return RasterSegmentation(folder / "a.tif", folder / "labels" / "a.tif", classes=["x", "y"], split_options=ALL)


# 0.5 m pixels in UTM 23S: float32 holds 9120475.75 only to the metre (9120476.0).
X0, Y0 = 712345.25, 9120475.75


@pytest.fixture
def utm_south(tmp_path: Path) -> RasterSegmentation:
    image = np.random.default_rng(0).integers(1, 255, (3, 32, 32), dtype=np.uint8)
    return _labelled(tmp_path, image, "EPSG:32723", from_origin(X0, Y0, 0.5, 0.5))


def _grid(row: int, col: int, height: int, width: int) -> tuple[list[float], list[float]]:
    """The exact transform and bounds (x, y part) of a window of the UTM-south raster."""
    left, top = X0 + 0.5 * col, Y0 - 0.5 * row
    right, bottom = left + 0.5 * width, top - 0.5 * height
    return [0.5, 0.0, left, 0.0, -0.5, top], [left, right, 0.5, bottom, top, 0.5]


def test_transforms_and_bounds_keep_the_exact_grid_in_float64(utm_south: RasterSegmentation) -> None:
    transform, bounds = _grid(3, 5, 8, 8)
    by_window = utm_south[PatchWindow(0, 3, 5, 8, 8)]
    by_slice = utm_south[slice(bounds[0], bounds[1]), slice(bounds[3], bounds[4])]
    for sample in (by_window, by_slice):
        assert sample["transform"].dtype == sample["bounds"].dtype == torch.float64
        assert sample["transform"].tolist() == transform
        assert sample["bounds"][:6].tolist() == bounds
    assert torch.equal(by_slice["image"], by_window["image"])


def test_transforms_stay_exact_through_a_data_loader(utm_south: RasterSegmentation) -> None:
    windows = [PatchWindow(0, 3, 5, 8, 8), PatchWindow(0, 17, 1, 8, 8)]
    (batch,) = DataLoader(utm_south, batch_size=2, sampler=windows)
    assert batch["transform"].dtype == batch["bounds"].dtype == torch.float64
    assert batch["transform"].tolist() == [_grid(*w[1:])[0] for w in windows]
    assert batch["bounds"][:, :6].tolist() == [_grid(*w[1:])[1] for w in windows]


@pytest.mark.parametrize("broken", ["a.tif", "labels/a.tif"])
@pytest.mark.parametrize(
    ("window", "rows", "cols"),
    [
        (PatchWindow(0, 240, 200, 8, 8), "240..248", "200..208"),
        (PatchWindow(0, 250, 250, 16, 16), "250..256", "250..256"),
    ],
)
def test_a_truncated_geotiff_names_the_file_and_window(
    tmp_path: Path, broken: str, window: PatchWindow, rows: str, cols: str
) -> None:
    image = np.random.default_rng(1).integers(0, 65535, (2, 256, 256), dtype=np.uint16)
    dataset = _labelled(tmp_path, image, "EPSG:32632", from_origin(0, 256, 1, 1))
    path = tmp_path / broken
    os.truncate(path, int(path.stat().st_size * 0.6))  # the header still opens; the last blocks are gone
    assert dataset[PatchWindow(0, 0, 0, 8, 8)]["image"].shape == (2, 8, 8)
    with pytest.raises(InvalidRasterError, match=re.escape(f"'{path}' at rows {rows}, columns {cols} (")):
        dataset[window]


@pytest.mark.parametrize(("dtype", "nodata"), [("uint16", 65535), ("int16", -9999)])
def test_integer_nodata_is_ignored_where_every_band_holds_it(tmp_path: Path, dtype: str, nodata: int) -> None:
    image = np.full((2, 16, 16), 1200, dtype=dtype)
    image[:, :4] = nodata  # both bands: no data
    image[0, 8, 8] = nodata  # one band only: the pixel keeps its label
    image[1, 9, 9] = nodata
    dataset = _labelled(tmp_path, image, "EPSG:32632", from_origin(0, 16, 1, 1), nodata=nodata)
    with rasterio.open(tmp_path / "labels" / "a.tif") as labels:
        classes = torch.from_numpy(labels.read(1).astype(np.int64))
    for compact in (False, True):
        dataset.compact = compact
        sample = dataset[PatchWindow(0, 0, 0, 16, 16)]
        empty = torch.zeros(16, 16, dtype=torch.bool)
        empty[:4] = True
        assert torch.equal(sample["mask"].long(), torch.where(empty, IGNORE_INDEX, classes))
        assert (sample["image"][:, :4] == 0).all()
        assert sample["image"][1, 8, 8] == sample["image"][0, 9, 9] == 1200
        assert (sample["image"][:, 4:] != nodata).all()


def test_an_int_index_or_a_loader_without_sampler_says_how_to_index(utm_south: RasterSegmentation) -> None:
    message = r"indexed by a PatchWindow\(tile, row, col, height, width\) or a GeoSlice, not 0; .*RandomPatchSampler"
    with pytest.raises(IndexTypeError, match=message):
        utm_south[0]
    with pytest.raises(TypeError, match=message):
        next(iter(DataLoader(utm_south, batch_size=2)))


def test_rasters_in_another_crs_or_resolution_are_warped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = np.ones((1, 32, 32), dtype=np.uint8)
    _write(tmp_path / "a.tif", image, "EPSG:31983", from_origin(333000, 7395000, 28.5, 28.5))  # Brazil, UTM 23S
    _write(tmp_path / "b.tif", image, "EPSG:3435", from_origin(1100000, 1900000, 10, 10))  # Illinois East, US feet
    _write(tmp_path / "c.tif", image, "EPSG:31983", from_origin(334000, 7395000, 10, 10))
    with caplog.at_level(logging.WARNING, logger="cmt_geo.data.base"):
        dataset = RasterSegmentation(tmp_path, classes=["x"], split_options=ALL)
    assert [tile.warp for tile in dataset.tiles] == [False, True, True]
    warped = [record.getMessage() for record in caplog.records if "warped" in record.getMessage()]
    assert len(warped) == 2
    dataset_grid = "the dataset's EPSG:31983 at 28.5 x 28.5 metre"
    assert warped[0].startswith(f"{tmp_path / 'b.tif'} is in EPSG:3435 at 10 x 10 US survey foot")
    assert warped[1].startswith(f"{tmp_path / 'c.tif'} is in EPSG:31983 at 10 x 10 metre")
    assert all(dataset_grid in message for message in warped)


def test_which_tiles_went_to_which_split_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    image = np.ones((1, 8, 8), dtype=np.uint8)
    for index, name in enumerate("ab"):
        _write(tmp_path / f"{name}.tif", image, "EPSG:32632", from_origin(100 * index, 8, 1, 1))
    (val,) = carve_validation(["a", "b"], SplitOptions().val_fraction, SplitOptions().seed, None)
    (train,) = {"a", "b"} - {val}
    with caplog.at_level(logging.INFO, logger="cmt_geo.data.base"):
        RasterSegmentation(tmp_path, classes=["x"])  # the default split="train" and split options
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"raster splits in {tmp_path}: train: 1 tile ({train}); val: 1 tile ({val}); test: 0"),
        (
            "WARNING",
            f"{tmp_path}: validation took {val!r}, one of only two training tiles, so train uses {train!r} alone; "
            "pass split_options=SplitOptions(val_fraction=0) to train on both, or choose with val_tiles=[...]",
        ),
    ]
    caplog.clear()
    RasterSegmentation(tmp_path, classes=["x"], split_options=SplitOptions(val_tiles=["a", "b"]), split="val")
    RasterSegmentation(tmp_path, classes=["x"], test_images=["a"], split="test")
    RasterSegmentation(tmp_path, classes=["x"], test_images=["a"], split_options=SplitOptions(val_tiles=[]))
    RasterSegmentation(tmp_path, classes=["x"], split_options=ALL)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{tmp_path}: validation took every training tile (a, b), so train is empty; choose fewer val_tiles"
    ]
    with caplog.at_level(logging.WARNING, logger="cmt_geo.data.base"):
        RasterSegmentation(tmp_path, classes=["x"], test_images=["a"])
    assert caplog.records[-1].getMessage() == (
        f"{tmp_path}: validation is empty: there is only one training tile (b); add tiles or choose val_tiles"
    )
