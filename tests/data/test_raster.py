"""The user's own rasters: class rasters or polygons as labels, several CRSs, no-data, windowed reads only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from cmt_geo.data import IGNORE_INDEX, CheckOptions, PatchWindow, RasterSegmentation, SplitOptions, check_dataset
from cmt_geo.errors import ConfigError, DatasetNotFoundError, InvalidLabelError, InvalidRasterError

from .conftest import fixture_script, nan_nodata_raster

RASTER = fixture_script("raster")
ALL = SplitOptions(val_fraction=0)


def _whole(dataset: RasterSegmentation, tile: int) -> dict[str, torch.Tensor]:
    source = dataset.tiles[tile]
    return dataset[PatchWindow(tile, 0, 0, source.height, source.width)]


def test_class_rasters_nodata_and_dtypes(pristine: Callable[[str], Path]) -> None:
    root = pristine("raster")
    dataset = RasterSegmentation(root / "images", root / "labels", classes=RASTER.CLASSES, split_options=ALL)
    assert str(dataset.crs.to_epsg()) == "32632"
    assert dataset.res == (1.0, 1.0)
    sample = _whole(dataset, 0)
    assert sample["image"].shape == (3, RASTER.HEIGHT, RASTER.WIDTH)
    assert sample["image"].dtype == torch.float32
    expected = torch.from_numpy(RASTER.class_map().astype(np.int64))
    expected[:8, :8] = IGNORE_INDEX
    assert torch.equal(sample["mask"], expected)
    assert sample["transform"].tolist() == [1.0, 0.0, 500000.0, 0.0, -1.0, 5000000.0]


def test_a_raster_in_another_crs_is_warped_to_the_dataset_grid(pristine: Callable[[str], Path]) -> None:
    root = pristine("raster")
    dataset = RasterSegmentation(root / "images", root / "labels", classes=RASTER.CLASSES, split_options=ALL)
    warped = dataset.tiles[1]
    assert warped.warp
    assert warped.files.name == "b"
    assert warped.width > 2 * RASTER.WIDTH
    assert warped.height > 2 * RASTER.HEIGHT
    mask = _whole(dataset, 1)["mask"]
    corners = mask[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == IGNORE_INDEX).all()  # outside the rotated footprint
    assert set(mask.unique().tolist()) == {0, 1, 2, IGNORE_INDEX}


def test_polygons_in_another_crs_match_the_class_rasters(pristine: Callable[[str], Path]) -> None:
    root = pristine("raster")
    rasters = RasterSegmentation(root / "images", root / "labels", classes=RASTER.CLASSES, split_options=ALL)
    vectors = RasterSegmentation(root / "images", root / "polygons.gpkg", classes=RASTER.CLASSES, split_options=ALL)
    from_raster, from_vector = _whole(rasters, 0)["mask"], _whole(vectors, 0)["mask"]
    assert (from_raster == from_vector).float().mean() > 0.97  # edges differ by rasterization rules only
    assert (from_vector[:8, :8] == IGNORE_INDEX).all()  # image no-data stays ignored


def test_background_fills_pixels_outside_polygons(pristine: Callable[[str], Path], tmp_path: Path) -> None:
    root = pristine("raster")
    frame = gpd.read_file(root / "polygons.gpkg")
    frame.iloc[[0]].to_parquet(tmp_path / "water.parquet")
    ignored = RasterSegmentation(root / "images/a.tif", tmp_path / "water.parquet", classes=RASTER.CLASSES)
    filled = RasterSegmentation(root / "images/a.tif", tmp_path / "water.parquet", classes=RASTER.CLASSES, background=1)
    window = PatchWindow(0, 20, 40, 8, 8)  # right of the water polygon
    assert (ignored[window]["mask"] == IGNORE_INDEX).all()
    assert (filled[window]["mask"] == 1).all()


def test_integer_class_attribute_and_bad_attributes(pristine: Callable[[str], Path], tmp_path: Path) -> None:
    root = pristine("raster")
    frame = gpd.read_file(root / "polygons.gpkg")
    frame["code"] = [RASTER.CLASSES.index(name) for name in frame["class"]]
    frame.to_file(tmp_path / "codes.shp")
    coded = RasterSegmentation(
        root / "images/a.tif", tmp_path / "codes.shp", classes=RASTER.CLASSES, class_column="code"
    )
    named = RasterSegmentation(root / "images/a.tif", root / "polygons.gpkg", classes=RASTER.CLASSES)
    assert torch.equal(_whole(coded, 0)["mask"], _whole(named, 0)["mask"])
    with pytest.raises(ConfigError, match="has no attribute 'kind'; pass class_column= one of"):
        RasterSegmentation(root / "images/a.tif", root / "polygons.gpkg", classes=RASTER.CLASSES, class_column="kind")
    with pytest.raises(InvalidLabelError, match=r"holds classes \['forest'\] not among"):
        RasterSegmentation(root / "images/a.tif", root / "polygons.gpkg", classes=["water", "field"])
    with pytest.raises(InvalidLabelError, match=r"class index 2, outside 0\.\.1"):
        RasterSegmentation(root / "images/a.tif", tmp_path / "codes.shp", classes=["a", "b"], class_column="code")


def test_user_options_are_checked(pristine: Callable[[str], Path], tmp_path: Path) -> None:
    root = pristine("raster")
    with pytest.raises(ConfigError, match="needs classes"):
        RasterSegmentation(root / "images")
    with pytest.raises(ConfigError, match="2 colours for 3 classes"):
        RasterSegmentation(root / "images", classes=RASTER.CLASSES, colors=[(0, 0, 0), (1, 1, 1)])
    with pytest.raises(DatasetNotFoundError, match="no rasters"):
        RasterSegmentation(tmp_path, classes=RASTER.CLASSES)
    with pytest.raises(ConfigError, match=r"test_images \['c'\] are not among the images"):
        RasterSegmentation(root / "images", classes=RASTER.CLASSES, test_images=["c"])


def test_label_value_outside_the_classes(pristine: Callable[[str], Path]) -> None:
    root = pristine("raster")
    dataset = RasterSegmentation(root / "images/a.tif", root / "labels/a.tif", classes=["water", "field"])
    with pytest.raises(InvalidLabelError, match="holds 2, which is not a class"):
        _whole(dataset, 0)


def test_test_images_form_the_test_split(pristine: Callable[[str], Path]) -> None:
    root = pristine("raster")
    train = RasterSegmentation(root / "images", root / "labels", classes=RASTER.CLASSES, test_images=["b"])
    test = RasterSegmentation(root / "images", root / "labels", classes=RASTER.CLASSES, test_images=["b"], split="test")
    assert [t.files.name for t in train.tiles] == ["a"]
    assert [t.files.name for t in test.tiles] == ["b"]


_MEMORY_PROBE = """
import json, resource, sys
import numpy as np, rasterio
from rasterio.windows import Window
from cmt_geo.data import PatchWindow, RandomPatchSampler, RasterSegmentation
root, size = sys.argv[1], int(sys.argv[2])
profile = dict(driver="GTiff", width=size, height=size, dtype="uint8", crs="EPSG:32632", tiled=True, blockxsize=256,
               blockysize=256, sparse_ok=True, transform=rasterio.transform.from_origin(500000, 5000000, 0.1, 0.1))
with rasterio.open(root + "/image.tif", "w", count=4, **profile) as image, \\
        rasterio.open(root + "/label.tif", "w", count=1, **profile) as label:
    for row in range(0, size, size // 4):  # a few real blocks; the rest stays sparse
        image.write(np.full((4, 256, 256), 7, np.uint8), window=Window(row, row, 256, 256))
        label.write(np.ones((1, 256, 256), np.uint8), window=Window(row, row, 256, 256))
dataset = RasterSegmentation(root + "/image.tif", root + "/label.tif", classes=["a", "b"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for window in RandomPatchSampler(dataset, 256, length=64, seed=0):
    sample = dataset[window]
window = PatchWindow(0, 0, 0, 256, 256)
assert dataset[window]["image"].max() == 7 and dataset[window]["mask"].max() == 1
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_mib": (after - before) / 1024}))
"""


@pytest.mark.slow
def test_reading_patches_reads_only_their_windows(tmp_path: Path) -> None:
    size = 16384  # 1.25 GiB of pixels in the image and the label, decoded
    env = {**os.environ, "GDAL_CACHEMAX": "32"}  # MiB of decoded blocks GDAL may keep
    command = [sys.executable, "-c", _MEMORY_PROBE, str(tmp_path), str(size)]
    grew = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)["grew_mib"]
    assert grew < 96, f"memory grew by {grew:.0f} MiB reading 65 patches of a {size}x{size} raster"


def test_a_crs_without_a_resolution_keeps_the_ground_size(pristine: Callable[[str], Path]) -> None:
    root = pristine("raster")
    dataset = RasterSegmentation(root / "images/a.tif", root / "labels/a.tif", classes=RASTER.CLASSES, crs="EPSG:4326")
    assert all(0.9e-5 < res < 1.3e-5 for res in dataset.res)  # 1 m spans 0.9e-5° (north) to 1.3e-5° (east) at 45° N
    [tile] = dataset.tiles
    assert tile.warp
    assert min(tile.height, tile.width) > RASTER.HEIGHT // 2  # square degree pixels: fewer rows, more columns
    assert 0.8 < tile.height * tile.width / (RASTER.HEIGHT * RASTER.WIDTH) < 1.25
    assert set(_whole(dataset, 0)["mask"].unique().tolist()) == {0, 1, 2, IGNORE_INDEX}


def test_nearly_equal_resolutions_are_not_warped(tmp_path: Path) -> None:
    for name, res in (("a", 1.0), ("b", 1.0 + 1e-12)):
        profile = {"height": 8, "width": 8, "count": 1, "dtype": "uint8", "crs": "EPSG:32632"}
        with rasterio.open(tmp_path / f"{name}.tif", "w", transform=from_origin(0, 8, res, res), **profile) as dst:
            dst.write(np.ones((1, 8, 8), dtype=np.uint8))
    dataset = RasterSegmentation(tmp_path, classes=["x"], split_options=ALL)
    assert [tile.warp for tile in dataset.tiles] == [False, False]


def _label_raster(path: Path, values: np.ndarray, nodata: float | None) -> None:
    profile = {"height": values.shape[0], "width": values.shape[1], "crs": "EPSG:32632"}
    with rasterio.open(
        path, "w", count=1, dtype="uint8", transform=from_origin(0, 32, 1, 1), nodata=nodata, **profile
    ) as dst:
        dst.write(values[None])


def test_a_label_nodata_that_is_a_class_is_kept_by_default_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = tmp_path / "image.tif"
    profile = {"height": 32, "width": 32, "crs": "EPSG:32632", "transform": from_origin(0, 32, 1, 1)}
    with rasterio.open(image, "w", count=2, dtype="uint8", **profile) as dst:
        dst.write(np.full((2, 32, 32), 9, dtype=np.uint8))
    values = np.zeros((32, 32), dtype=np.uint8)
    values[:, 20:] = 1
    _label_raster(tmp_path / "label.tif", values, nodata=0)  # GDAL tools often write nodata=0 by default
    kept = RasterSegmentation(image, tmp_path / "label.tif", classes=["background", "roof"], split_options=ALL)
    assert "declares no-data 0, which is class 'background'" in caplog.text
    mask = _whole(kept, 0)["mask"]
    assert (mask[:, :20] == 0).all()
    assert (mask[:, 20:] == 1).all()
    ignored = RasterSegmentation(
        image, tmp_path / "label.tif", classes=["background", "roof"], split_options=ALL, label_nodata="ignore"
    )
    assert (_whole(ignored, 0)["mask"][:, :20] == IGNORE_INDEX).all()
    report = check_dataset("raster", image, CheckOptions(labels=tmp_path / "label.tif", classes=("background", "roof")))
    [warning] = [p for p in report.problems if "declares no-data" in p.message]
    assert not warning.fatal
    assert "its 640 px are kept as that class" in warning.message
    assert report.pixels_per_class == {"background": 640, "roof": 384, "ignored": 0}


def test_images_with_different_band_counts_are_refused(tmp_path: Path) -> None:
    profile = {"height": 32, "width": 32, "crs": "EPSG:32632", "transform": from_origin(0, 32, 1, 1), "dtype": "uint8"}
    (tmp_path / "images").mkdir()
    for name, count in (("a", 6), ("b", 1)):
        with rasterio.open(tmp_path / "images" / f"{name}.tif", "w", count=count, **profile) as dst:
            dst.write(np.ones((count, 32, 32), dtype=np.uint8))
    with pytest.raises(InvalidRasterError, match=r"b.tif: has 1 uint8 bands but a.tif has 6 uint8 bands"):
        RasterSegmentation(tmp_path / "images", classes=["x"], split_options=ALL)
    report = check_dataset("raster", tmp_path / "images")
    assert [(p.kind, p.path.name) for p in report.problems if p.fatal] == [("bands", "b.tif")]


def test_unknown_label_values_can_be_ignored_as_the_hint_says(tmp_path: Path) -> None:
    dataset = nan_nodata_raster(tmp_path)
    _label_raster(tmp_path / "labels" / "a.tif", np.full((32, 32), 7, dtype=np.uint8), nodata=None)
    with pytest.raises(InvalidLabelError, match="unknown_labels='ignore'"):
        _whole(RasterSegmentation(dataset.paths[0], tmp_path / "labels" / "a.tif", classes=["x", "y"]), 0)
    tolerant = RasterSegmentation(
        dataset.paths[0], tmp_path / "labels" / "a.tif", classes=["x", "y"], unknown_labels="ignore", split_options=ALL
    )
    assert (_whole(tolerant, 0)["mask"] == IGNORE_INDEX).all()


def test_check_reads_vector_labels_and_reports_a_missing_label_folder_once(
    pristine: Callable[[str], Path], tmp_path: Path
) -> None:
    root = pristine("raster")
    assert check_dataset("raster", root / "images", CheckOptions(labels=root / "polygons.gpkg")).ok
    good = check_dataset(
        "raster", root / "images", CheckOptions(labels=root / "polygons.gpkg", classes=tuple(RASTER.CLASSES))
    )
    assert good.ok, good.problems
    missing = check_dataset("raster", root / "images", CheckOptions(labels=tmp_path / "missing.gpkg"))
    assert [(p.kind, p.path.name, p.fatal) for p in missing.problems] == [("missing", "missing.gpkg", True)]
    (tmp_path / "garbage.gpkg").write_bytes(b"not a geopackage")
    garbage = check_dataset("raster", root / "images", CheckOptions(labels=tmp_path / "garbage.gpkg"))
    assert [(p.kind, p.path.name) for p in garbage.problems] == [("labels", "garbage.gpkg")]
    assert "cannot read vector labels" in garbage.problems[0].message
    wrong = check_dataset(
        "raster", root / "images", CheckOptions(labels=root / "polygons.gpkg", classes=("water", "field"))
    )
    assert "not among ['water', 'field']" in wrong.problems[0].message
    no_folder = check_dataset("raster", root / "images", CheckOptions(labels=tmp_path / "labels"))
    assert [(p.kind, p.path.name) for p in no_folder.problems] == [("missing", "labels")]


def test_band_names_come_from_the_rasters_band_descriptions(pristine: Callable[[str], Path], tmp_path: Path) -> None:
    root = pristine("raster")
    plain = RasterSegmentation(root / "images/a.tif", root / "polygons.gpkg", classes=RASTER.CLASSES)
    described = tmp_path / "described.tif"
    with rasterio.open(root / "images/a.tif") as src:
        profile, data = src.profile, src.read()
    with rasterio.open(described, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("Red", "Green", "NIR")[: data.shape[0]]
    named = RasterSegmentation(described, root / "polygons.gpkg", classes=RASTER.CLASSES, bands=(3, 1))
    assert plain.band_names == tuple(f"band{b}" for b in range(1, data.shape[0] + 1))
    assert named.band_names == ("NIR", "Red")
    with rasterio.open(described, "r+") as dst:
        dst.descriptions = ("Red", "Green", "red")  # ambiguous for a case-blind match: numbers instead
    ambiguous = RasterSegmentation(described, root / "polygons.gpkg", classes=RASTER.CLASSES, bands=(3, 2))
    assert ambiguous.band_names == ("band3", "band2")
