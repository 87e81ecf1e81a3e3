"""`cmtgeo vectorize`: writes the polygons, refuses to overwrite, one-line errors, usage errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo
from rasterio.transform import from_origin


def _classes(path: Path, array: np.ndarray) -> Path:
    """A class raster in UTM 32N with 1 m pixels."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=array.shape[0],
        width=array.shape[1],
        count=1,
        dtype=array.dtype.name,
        crs="EPSG:32632",
        transform=from_origin(500_000.0, 5_000_000.0, 1.0, 1.0),
        nodata=255 if array.dtype == np.uint8 else None,
    ) as dst:
        dst.write(array, 1)
    return path


@pytest.fixture
def raster(tmp_path: Path) -> Path:
    scene = np.zeros((33, 45), dtype=np.uint8)
    scene[5:25, 10:40] = 1
    for step in range(6):  # a staircase that simplification would smooth
        scene[12 + step, 20 : 21 + step] = 2
    scene[30:, :5] = 255
    return _classes(tmp_path / "classes.tif", scene)


def test_vectorize_writes_named_exact_polygons(tmp_path: Path, raster: Path) -> None:
    out = tmp_path / "classes.gpkg"
    args = ["vectorize", str(raster), "-o", str(out), "--simplify", "none", "--classes", "ground, roof,car"]
    result = CliRunner().invoke(cmtgeo, [*args, "--progress", "none"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {out}"
    frame = gpd.read_file(out)
    with rasterio.open(raster) as src:
        rows, cols = np.nonzero(src.read(1) == 2)
    assert sorted(frame.class_name) == ["car", "ground", "roof"]
    expected = {"ground": 33 * 45 - 15 - 600, "roof": 600 - 21, "car": 21}  # 1 m pixels; 15 no-data pixels
    assert dict(zip(frame.class_name, frame.area, strict=True)) == expected
    pixels = [
        shapely.box(500_000 + c, 5_000_000 - r - 1, 500_001 + c, 5_000_000 - r) for r, c in zip(rows, cols, strict=True)
    ]
    assert frame.geometry[frame.class_name == "car"].item().equals(shapely.union_all(pixels))  # not simplified


def test_min_area_and_json_progress(tmp_path: Path, raster: Path) -> None:
    out = tmp_path / "classes.parquet"
    result = CliRunner().invoke(cmtgeo, ["vectorize", str(raster), "-o", str(out), "--min-area", "25"])
    assert result.exit_code == 0, result.output
    assert sorted(gpd.read_parquet(out).class_id) == [0, 1]
    result = CliRunner().invoke(cmtgeo, ["vectorize", str(raster), "-o", str(out), "--overwrite", "--progress", "json"])
    lines = [json.loads(line) for line in result.stdout.splitlines()[:-1]]
    assert lines[-1] == {"done": 5, "total": 5, "fraction": 1.0, "message": "written"}


def test_existing_output_is_refused_without_overwrite(tmp_path: Path, raster: Path) -> None:
    out = tmp_path / "classes.shp"
    runner = CliRunner()
    assert runner.invoke(cmtgeo, ["vectorize", str(raster), "-o", str(out)]).exit_code == 0
    result = runner.invoke(cmtgeo, ["vectorize", str(raster), "-o", str(out)])
    assert result.exit_code == 1
    assert "classes.shp exists; pass --overwrite" in result.stderr
    assert runner.invoke(cmtgeo, ["vectorize", str(raster), "-o", str(out), "--overwrite"]).exit_code == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder: folder / "missing.tif", "missing.tif does not exist; give the path of a class raster"),
        (lambda folder: _text(folder / "notes.tif"), "cannot read raster"),
        (
            lambda folder: _classes(folder / "float.tif", np.zeros((8, 8), np.float32)),
            "vectorize needs one band of integer class ids",
        ),
    ],
)
def test_bad_input_is_one_line_error(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cmtgeo, ["vectorize", str(make(tmp_path)), "-o", str(tmp_path / "out.gpkg")])
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.gpkg").exists()


def _text(path: Path) -> Path:
    path.write_text("not a raster")
    return path


@pytest.mark.parametrize(
    "options",
    [["--simplify", "smooth"], ["--simplify", "-1"], ["--min-area", "-5"], []],
)
def test_usage_errors_exit_2(tmp_path: Path, raster: Path, options: list[str]) -> None:
    args = ["vectorize", str(raster), *options] + (["-o", str(tmp_path / "out.gpkg")] if options else [])
    result = CliRunner().invoke(cmtgeo, args)
    assert result.exit_code == 2, result.output


def test_unknown_suffix_is_a_one_line_error(tmp_path: Path, raster: Path) -> None:
    result = CliRunner().invoke(cmtgeo, ["vectorize", str(raster), "-o", str(tmp_path / "out.kml")])
    assert result.exit_code == 1
    assert "use one of .gpkg, .shp, .geojson, .parquet" in result.stderr


def test_help_has_a_summary_and_an_example() -> None:
    assert "vectorize  Turn a class raster into class polygons.\n" in CliRunner().invoke(cmtgeo, ["--help"]).output
    result = CliRunner().invoke(cmtgeo, ["vectorize", "--help"])
    assert "$ cmtgeo vectorize classes.tif -o classes.gpkg" in result.output
