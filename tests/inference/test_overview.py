"""The streamed 2x2-mode overview: the most frequent class of each block, no-data ignored, any row split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from cmt_geo.inference.overview import ModeOverview, overview_factors, remove_overviews


def _mode_by_hand(classes: np.ndarray, nodata: int) -> np.ndarray:
    rows, cols = -(-classes.shape[0] // 2), -(-classes.shape[1] // 2)
    out = np.full((rows, cols), nodata, np.uint8)
    for r in range(rows):
        for c in range(cols):
            block = classes[2 * r : 2 * r + 2, 2 * c : 2 * c + 2].ravel()
            block = block[block != nodata]
            if len(block):
                values, counts = np.unique(block, return_counts=True)
                out[r, c] = values[counts == counts.max()].min()
    return out


@pytest.mark.parametrize("splits", [[7], [1, 2, 1, 3], [2, 2, 3]])
def test_streamed_overview_is_the_2x2_mode_whatever_the_row_split(tmp_path: Path, splits: list[int]) -> None:
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, (sum(splits), 9)).astype(np.uint8)
    classes[rng.random(classes.shape) < 0.3] = 255
    profile = {"driver": "GTiff", "width": 9, "height": len(classes), "count": 1, "dtype": "uint8", "nodata": 255}
    with rasterio.open(tmp_path / "c.tif", "w", transform=Affine(2, 0, 0, 0, -2, 0), **profile) as full:
        overview = ModeOverview(full, tmp_path / "c.tif.ovr", 255)
        top = 0
        for count in splits:
            overview.add(classes[top : top + count])
            top += count
        overview.close()
    with rasterio.open(tmp_path / "c.tif.ovr") as written:
        assert written.transform.a == pytest.approx(2 * 9 / 5)
        assert np.array_equal(written.read(1), _mode_by_hand(classes, 255))


def test_overview_factors_halve_until_one_cog_block() -> None:
    assert overview_factors(512, 300) == []
    assert overview_factors(600, 530) == [2]
    assert overview_factors(4096, 4096) == [2, 4, 8]
    assert overview_factors(100, 5000) == [2, 4, 8, 16]


def test_levels_chain_until_one_cog_block_and_gdal_reads_them_as_overviews(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 4, (6, 2100)).astype(np.uint8)
    profile = {"driver": "GTiff", "width": 2100, "height": 6, "count": 1, "dtype": "uint8", "nodata": 255}
    path = tmp_path / "c.tif"
    with rasterio.open(path, "w", transform=Affine(0.5, 0, 0, 0, -0.5, 0), **profile) as full:
        full.write(classes[None])
        overview = ModeOverview(full, tmp_path / "c.tif.ovr", 255)
        overview.add(classes)
        overview.close()
    expected = classes
    with rasterio.open(path) as written:
        assert written.overviews(1) == [2, 4, 8]
        for _ in range(3):
            expected = _mode_by_hand(expected, 255)
            assert np.array_equal(written.read(1, out_shape=expected.shape), expected)
    remove_overviews(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]
