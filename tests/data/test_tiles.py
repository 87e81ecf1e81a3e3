"""Tile inspection: headers, band counts, size mismatches, unreadable files, pairing problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from cmt_geo.data.tiles import TileFiles, files_by_name, inspect_tiles, missing_labels, orphan_labels
from cmt_geo.errors import DatasetNotFoundError, InvalidLabelError, InvalidRasterError
from cmt_geo.io.raster import read_header


def _tif(path: Path, bands: int, height: int = 8, width: int = 8, crs: str = "EPSG:32632", x: float = 500000) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=bands,
        dtype="uint8",
        crs=crs,
        transform=rasterio.transform.from_origin(x, 5000000, 1, 1),
    ) as dst:
        dst.write(np.ones((bands, height, width), dtype=np.uint8))
    return path


def test_read_header_reports_size_bands_and_georeferencing(tmp_path: Path) -> None:
    info = read_header(_tif(tmp_path / "a.tif", 4, 6, 9))
    assert (info.height, info.width, info.count, info.georeferenced) == (6, 9, 4, True)


def test_unreadable_file_is_an_invalid_raster_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff")
    with pytest.raises(InvalidRasterError, match=r"broken\.tif.*replace the file"):
        read_header(broken)


def test_inspect_lists_every_problem_and_keeps_good_tiles(tmp_path: Path) -> None:
    good = TileFiles("good", "good", "train", _tif(tmp_path / "g.tif", 3), _tif(tmp_path / "gl.tif", 3), None, 3)
    bands = TileFiles("bands", "bands", "train", _tif(tmp_path / "b.tif", 4), _tif(tmp_path / "bl.tif", 3), None, 3)
    size = TileFiles("size", "size", "train", _tif(tmp_path / "s.tif", 3), _tif(tmp_path / "sl.tif", 3, 8, 9), None, 3)
    (tmp_path / "u.tif").write_bytes(b"junk")
    unreadable = TileFiles("unreadable", "u", "train", _tif(tmp_path / "ui.tif", 3), tmp_path / "u.tif", None, 3)
    usable, problems = inspect_tiles([good, bands, size, unreadable], label_bands=3)
    assert [files.name for files, _ in usable] == ["good"]
    assert [(p.kind, p.path.name) for p in problems] == [
        ("bands", "b.tif"),
        ("size", "sl.tif"),
        ("unreadable", "u.tif"),
    ]
    assert "has 4 bands, expected 3" in problems[0].message
    assert "is 9x8 px but its image s.tif is 8x8 px" in problems[1].message
    assert isinstance(problems[1].error(), InvalidRasterError)


def test_a_label_on_another_grid_than_its_image_is_a_problem(tmp_path: Path) -> None:
    image = _tif(tmp_path / "i.tif", 3)
    crs = TileFiles("crs", "crs", "train", image, _tif(tmp_path / "crs.tif", 3, crs="EPSG:32633"), None, 3)
    shifted = TileFiles("shifted", "shifted", "train", image, _tif(tmp_path / "shift.tif", 3, x=500004), None, 3)
    usable, problems = inspect_tiles([crs, shifted], label_bands=3)
    assert usable == []
    assert [(p.kind, p.path.name) for p in problems] == [("grid", "crs.tif"), ("grid", "shift.tif")]
    assert "EPSG:32633" in problems[0].message
    assert "its image i.tif is in EPSG:32632" in problems[0].message
    assert "reproject the label onto the image's grid" in problems[1].message
    assert isinstance(problems[1].error(), InvalidRasterError)


def test_pairing_problems_name_the_file_and_map_to_errors(tmp_path: Path) -> None:
    lonely = TileFiles("a", "a", "train", tmp_path / "a.tif", None)
    [missing] = missing_labels([lonely], ("train",), "put {name}.png beside")
    assert missing.path.name == "a.tif"
    assert "put a.png beside" in missing.message
    assert isinstance(missing.error(), DatasetNotFoundError)
    [orphan] = orphan_labels({"b": tmp_path / "b.png"}, {"a"}, {"b": "train"})
    assert orphan.path.name == "b.png"
    assert orphan.split == "train"
    assert "has no image" in orphan.message
    assert not isinstance(orphan.error(), InvalidLabelError)


def test_files_by_name_strips_prefix_and_suffix(tmp_path: Path) -> None:
    for name in ("top_1.tif", "top_2.tif", "other.tif", "top_3.png"):
        (tmp_path / name).touch()
    assert sorted(files_by_name(tmp_path, ".tif", "top_")) == ["1", "2"]
    assert files_by_name(tmp_path / "absent", ".tif") == {}
