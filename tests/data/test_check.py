"""Dataset check: every problem listed with its path; a partial dataset is valid; a summary when all is well."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cmt_geo.data import CheckOptions, Vaihingen, check_dataset
from cmt_geo.errors import ConfigError, DatasetNotFoundError

from .conftest import fixture_script

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
VAIHINGEN = fixture_script("vaihingen")


@pytest.mark.parametrize(
    ("name", "tiles", "pixels"),
    [
        ("vaihingen", {"train": 3, "val": 1, "test": 2}, 6 * 32 * 40),
        ("potsdam", {"train": 2, "val": 1, "test": 1}, 4 * 48 * 48),
        ("uavid", {"train": 6, "val": 2, "test": 2, "unlabelled": 2}, 10 * 48 * 64),
        ("loveda", {"train": 4, "val": 1, "test": 2, "unlabelled": 1}, 7 * 32 * 32),
    ],
)
def test_good_partial_folders_pass_with_a_summary(
    pristine: Callable[[str], Path], name: str, tiles: dict[str, int], pixels: int
) -> None:
    report = check_dataset(name, pristine(name))
    assert report.ok
    assert report.tiles_per_split == tiles
    assert sum(report.pixels_per_class.values()) == pixels
    assert all(count > 0 for label, count in report.pixels_per_class.items() if label != "ignored")
    assert {p.kind for p in report.problems} == {"incomplete"}
    assert not any(p.fatal for p in report.problems)


def test_every_problem_is_listed_with_its_path(dataset_copy: Callable[[str], Path]) -> None:
    root = dataset_copy("vaihingen")
    labels = root / "gts_for_participants"
    (labels / "top_mosaic_09cm_area3.tif").unlink()
    shutil.copy(labels / "top_mosaic_09cm_area1.tif", labels / "top_mosaic_09cm_area9.tif")
    VAIHINGEN._write(labels / "top_mosaic_09cm_area5.tif", np.zeros((3, 16, 40), dtype=np.uint8))
    VAIHINGEN._write(root / "top" / "top_mosaic_09cm_area7.tif", np.zeros((4, 32, 40), dtype=np.uint8))
    (root / "top_mosaic_09cm_area2_noBoundary.tif").write_bytes(b"junk")
    colours = np.full((3, 32, 40), 255, dtype=np.uint8)
    colours[:, :2, :3] = 7
    VAIHINGEN._write(labels / "top_mosaic_09cm_area1.tif", colours)
    shutil.copy(root / "top" / "top_mosaic_09cm_area4.tif", root / "top" / "top_mosaic_09cm_area99.tif")
    report = check_dataset("vaihingen", root)
    assert not report.ok
    found = {(p.kind, p.path.name, p.fatal) for p in report.problems}
    assert found >= {
        ("missing", "top_mosaic_09cm_area3.tif", True),
        ("missing", "top_mosaic_09cm_area9.tif", True),
        ("size", "top_mosaic_09cm_area5.tif", True),
        ("bands", "top_mosaic_09cm_area7.tif", True),
        ("unreadable", "top_mosaic_09cm_area2_noBoundary.tif", True),
        ("labels", "top_mosaic_09cm_area1.tif", True),
        ("extra", "top_mosaic_09cm_area99.tif", False),
    }
    [colour] = [p for p in report.problems if p.kind == "labels"]
    assert "(7, 7, 7) (6 px)" in colour.message


def test_empty_or_missing_folder_and_unknown_dataset(tmp_path: Path) -> None:
    report = check_dataset("uavid", tmp_path)
    assert not report.ok
    assert "no UAVid frames" in report.problems[0].message
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        check_dataset("uavid", tmp_path / "absent")
    with pytest.raises(ConfigError, match="unknown dataset 'cityscapes'; use one of vaihingen, potsdam"):
        check_dataset("cityscapes", tmp_path)


def test_isprs_check_reads_full_and_eroded_labels_of_every_tile(dataset_copy: Callable[[str], Path]) -> None:
    root = dataset_copy("vaihingen")
    (root / "gts_for_participants" / "top_mosaic_09cm_area2.tif").write_bytes(b"junk")  # a test tile's full label
    (root / "top_mosaic_09cm_area1_noBoundary.tif").write_bytes(b"junk")  # a training tile's eroded label
    (root / "top_mosaic_09cm_area3_noBoundary.tif").unlink()
    colours = np.zeros((3, 32, 40), dtype=np.uint8)
    colours[:, 0, 0] = 9
    VAIHINGEN._write(root / "top_mosaic_09cm_area5_noBoundary.tif", colours)
    report = check_dataset("vaihingen", root)
    found = {(p.kind, p.path.name, p.fatal) for p in report.problems}
    assert found >= {
        ("unreadable", "top_mosaic_09cm_area2.tif", True),
        ("unreadable", "top_mosaic_09cm_area1_noBoundary.tif", True),
        ("labels", "top_mosaic_09cm_area5_noBoundary.tif", True),
    }
    [absent] = [p for p in report.problems if p.kind == "missing"]
    assert not absent.fatal
    assert "no eroded label for tiles 3; only labels='eroded' needs them" in absent.message
    assert report.tiles_per_split == {"train": 3, "val": 1, "test": 2}


def test_raster_check_lists_pairing_and_grid_problems(pristine: Callable[[str], Path], tmp_path: Path) -> None:
    root = Path(shutil.copytree(pristine("raster"), tmp_path / "raster"))
    good = check_dataset("raster", root / "images", CheckOptions(labels=root / "labels"))
    assert good.ok, good.problems
    assert good.tiles_per_split == {"train": 1, "val": 1}
    (root / "labels" / "a.tif").write_bytes(b"junk")
    shutil.copy(root / "labels" / "b.tif", root / "labels" / "c.tif")
    (root / "labels" / "b.tif").unlink()
    shutil.copy(pristine("raster") / "labels" / "b.tif", root / "labels" / "d.tif")  # in another CRS than d's image
    shutil.copy(root / "images" / "a.tif", root / "images" / "d.tif")
    report = check_dataset("raster", root / "images", CheckOptions(labels=root / "labels"))
    assert {(p.kind, p.path.name) for p in report.problems} == {
        ("unreadable", "a.tif"),
        ("missing", "b.tif"),
        ("missing", "c.tif"),
        ("grid", "d.tif"),
    }
    with pytest.raises(ConfigError, match=r"labels \(--labels\) does not apply to vaihingen"):
        check_dataset("vaihingen", root, CheckOptions(labels=root / "labels"))
    with pytest.raises(DatasetNotFoundError, match=r"absent\.tif does not exist"):
        check_dataset("raster", root / "absent.tif")


def _truncate(path: Path, keep: float = 0.6) -> None:
    """Cut a file to `keep` of its bytes: its header still opens, its last blocks fail to decode."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _noisy_tiff(path: Path, count: int, size: int = 256) -> None:
    profile = {"height": size, "width": size, "tiled": True, "blockxsize": 64, "blockysize": 64, "compress": "deflate"}
    noise = np.random.default_rng(0).integers(0, 255, (count, size, size), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", count=count, dtype="uint8", **profile) as dst:
        dst.write(noise)


def test_truncated_images_and_labels_are_found_by_decoding_every_block(tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    _noisy_tiff(images / "a.tif", 3)
    with rasterio.open(labels / "a.tif", "w", driver="GTiff", count=1, dtype="uint8", height=256, width=256) as dst:
        dst.write(np.zeros((1, 256, 256), dtype=np.uint8))
    assert check_dataset("raster", images, CheckOptions(labels=labels)).ok
    _truncate(images / "a.tif")
    report = check_dataset("raster", images, CheckOptions(labels=labels))
    [problem] = report.problems
    assert (problem.kind, problem.path.name, problem.fatal) == ("unreadable", "a.tif", True)
    assert "truncated or corrupt" in problem.message
    assert "rows" in problem.message


def test_a_truncated_isprs_image_or_label_is_reported_with_its_path(dataset_copy: Callable[[str], Path]) -> None:
    root = dataset_copy("vaihingen")
    image = root / "top" / "top_mosaic_09cm_area1.tif"
    label = root / "gts_for_participants" / "top_mosaic_09cm_area1.tif"
    _noisy_tiff(image, 3)  # large and noisy, so that truncation hits blocks, not the header
    colours = np.array(VAIHINGEN.COLORS, dtype=np.uint8)[np.random.default_rng(1).integers(0, 6, (256, 256))]
    profile = {"height": 256, "width": 256, "count": 3, "dtype": "uint8", "tiled": True, "compress": "deflate"}
    with rasterio.open(label, "w", driver="GTiff", blockxsize=64, blockysize=64, **profile) as dst:
        dst.write(np.moveaxis(colours, -1, 0))
    (root / "top_mosaic_09cm_area1_noBoundary.tif").unlink()  # its size no longer matches
    assert check_dataset("vaihingen", root).ok
    _truncate(image)
    _truncate(label)
    report = check_dataset("vaihingen", root)
    unreadable = {p.path for p in report.problems if p.kind == "unreadable"}
    assert unreadable == {image, label}
    assert report.tiles_per_split == {"train": 2, "val": 1, "test": 2}


def test_check_reports_decoding_progress(pristine: Callable[[str], Path]) -> None:
    seen: list[tuple[int, int | None]] = []

    class Recorder:
        def report(self, done: int, total: int | None, message: str = "") -> None:
            seen.append((done, total))

        def is_canceled(self) -> bool:
            return False

    check_dataset("loveda", pristine("loveda"), progress=Recorder())
    assert seen
    assert seen[-1][0] == seen[-1][1]
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_per_class_counts_match_the_fixture_s_own_class_maps(pristine: Callable[[str], Path]) -> None:
    """Counts from the fixture script's own class maps, not through the library's colour table: a swap fails."""
    rng = np.random.default_rng(0)
    expected = np.zeros(len(VAIHINGEN.COLORS), dtype=np.int64)
    ignored = 0
    for split in VAIHINGEN.TILES.values():
        classes = VAIHINGEN.class_map(rng)
        rng.integers(0, 200, (3, VAIHINGEN.HEIGHT, VAIHINGEN.WIDTH))  # the image noise the script draws next
        if split == "test":  # eroded labels: the script blanks every eighth row
            ignored += classes[::8].size
            classes = np.delete(classes, np.s_[::8], axis=0)
        expected += np.bincount(classes.ravel(), minlength=len(VAIHINGEN.COLORS))
    report = check_dataset("vaihingen", pristine("vaihingen"))
    assert report.pixels_per_class == {
        **dict(zip(Vaihingen.classes, expected.tolist(), strict=True)),
        "ignored": ignored,
    }


def test_mixed_georeferencing_is_an_error_and_an_image_of_only_nodata_a_warning(tmp_path: Path) -> None:
    profile = {"driver": "GTiff", "height": 32, "width": 32, "count": 2, "dtype": "uint8", "nodata": 0}
    placed = {"crs": "EPSG:32632", "transform": rasterio.transform.from_origin(0, 32, 1, 1)}
    with rasterio.open(tmp_path / "a.tif", "w", **profile, **placed) as dst:
        dst.write(np.ones((2, 32, 32), dtype=np.uint8))
    with rasterio.open(tmp_path / "b.tif", "w", **profile, **placed) as dst:
        dst.write(np.zeros((2, 32, 32), dtype=np.uint8))
    report = check_dataset("raster", tmp_path)
    assert report.ok
    [empty] = report.problems
    assert (empty.kind, empty.path.name, empty.fatal) == ("empty", "b.tif", False)
    with (
        pytest.warns(rasterio.errors.NotGeoreferencedWarning),
        rasterio.open(tmp_path / "c.tif", "w", **profile) as dst,
    ):
        dst.write(np.ones((2, 32, 32), dtype=np.uint8))
    [grid] = [p for p in check_dataset("raster", tmp_path).problems if p.fatal]
    assert (grid.kind, grid.path.name) == ("grid", "c.tif")
    assert "has no georeferencing (CRS and transform) while a.tif has" in grid.message
