"""The streaming dataset base: pixel windows and TorchGeo slices agree, padding, workers, compact samples."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from cmt_geo.data import (
    IGNORE_INDEX,
    PatchWindow,
    Potsdam,
    RandomPatchSampler,
    SplitOptions,
    Vaihingen,
)
from cmt_geo.errors import ConfigError

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
