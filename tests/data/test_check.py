"""Dataset check: every problem listed with its path; a partial dataset is valid; a summary when all is well."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cmt_geo.data import check_dataset
from cmt_geo.errors import ConfigError, DatasetNotFoundError

from .conftest import fixture_script

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
VAIHINGEN = fixture_script("vaihingen")


@pytest.mark.parametrize(
    ("name", "tiles", "pixels"),
    [
        ("vaihingen", {"train": 4, "test": 2}, 6 * 32 * 40),
        ("potsdam", {"train": 3, "test": 1}, 4 * 48 * 48),
        ("uavid", {"train": 8, "val": 2, "test": 2}, 10 * 48 * 64),
        ("loveda", {"train": 5, "val": 2, "test": 1}, 7 * 32 * 32),
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
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        check_dataset("uavid", tmp_path / "absent")
    with pytest.raises(ConfigError, match="cannot check dataset 'cityscapes'"):
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
    assert report.tiles_per_split == {"train": 4, "test": 2}


def test_raster_check_lists_pairing_and_grid_problems(pristine: Callable[[str], Path], tmp_path: Path) -> None:
    root = Path(shutil.copytree(pristine("raster"), tmp_path / "raster"))
    good = check_dataset("raster", root / "images", labels=root / "labels")
    assert good.ok, good.problems
    assert good.tiles_per_split == {"train": 2}
    (root / "labels" / "a.tif").write_bytes(b"junk")
    shutil.copy(root / "labels" / "b.tif", root / "labels" / "c.tif")
    (root / "labels" / "b.tif").unlink()
    shutil.copy(pristine("raster") / "labels" / "b.tif", root / "labels" / "d.tif")  # in another CRS than d's image
    shutil.copy(root / "images" / "a.tif", root / "images" / "d.tif")
    report = check_dataset("raster", root / "images", labels=root / "labels")
    assert {(p.kind, p.path.name) for p in report.problems} == {
        ("unreadable", "a.tif"),
        ("missing", "b.tif"),
        ("missing", "c.tif"),
        ("grid", "d.tif"),
    }
    with pytest.raises(ConfigError, match="--labels is only for --dataset raster"):
        check_dataset("vaihingen", root, labels=root / "labels")
    with pytest.raises(DatasetNotFoundError, match="does not exist; give an image or a folder of images"):
        check_dataset("raster", root / "absent.tif")
