"""Vector writers: every format round-trips in the source CRS, GeoPackage 1.3, the shapefile set, atomic writes and
overwrite rules."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pyarrow.parquet
import pyogrio
import pytest

from cmt_geo.errors import ConfigError, OutputExistsError
from cmt_geo.vector import polygonize, vectorize, write_vector

from .conftest import WriteRaster, class_scene

SHAPEFILE_SET = ["out.cpg", "out.dbf", "out.prj", "out.shp", "out.shx"]


@pytest.fixture
def frame(write_raster: WriteRaster) -> gpd.GeoDataFrame:
    return polygonize(write_raster(class_scene(30, 41)), class_names=["road", "building", "tree", "grass"])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty folder for the outputs (the class raster lies beside it)."""
    path = tmp_path / "vectors"
    path.mkdir()
    return path


def _read(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path, engine="pyogrio")


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".geojson", ".parquet"])
def test_every_format_round_trips_in_the_source_crs(folder: Path, frame: gpd.GeoDataFrame, suffix: str) -> None:
    written = write_vector(frame, folder / f"out{suffix}")
    back = _read(written)
    assert len(back) == len(frame)
    assert back.crs.to_epsg() == 32632
    perimeter = "perim_m" if suffix == ".shp" else "perimeter_m"
    assert list(back.columns) == ["class_id", "class_name", "area_m2", perimeter, "geometry"]
    assert list(back.class_name) == list(frame.class_name)
    assert back.area.sum() == pytest.approx(frame.area.sum())
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert hidden == []


def test_geopackage_is_version_1_3_with_the_layer_named_after_the_file(folder: Path, frame: gpd.GeoDataFrame) -> None:
    path = write_vector(frame, folder / "classes.gpkg")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10300
    assert [name for name, _ in pyogrio.list_layers(path)] == ["classes"]


def test_a_shapefile_is_written_as_a_whole_set(folder: Path, frame: gpd.GeoDataFrame) -> None:
    write_vector(frame, folder / "out.shp")
    assert sorted(p.name for p in folder.iterdir()) == SHAPEFILE_SET
    assert (folder / "out.cpg").read_text().strip().upper() in ("UTF-8", "UTF8")


def test_outputs_are_refused_without_overwrite_and_replaced_with_it(folder: Path, frame: gpd.GeoDataFrame) -> None:
    target = folder / "out.gpkg"
    target.write_text("mine")
    with pytest.raises(OutputExistsError, match=r"out.gpkg exists; pass --overwrite \(overwrite=True\)"):
        write_vector(frame, target)
    assert target.read_text() == "mine"
    write_vector(frame, target, overwrite=True)
    assert len(_read(target)) == len(frame)


def test_any_file_of_a_shapefile_set_is_refused_and_overwrite_replaces_the_whole_set(
    folder: Path, frame: gpd.GeoDataFrame
) -> None:
    (folder / "out.dbf").write_text("someone's table")
    with pytest.raises(OutputExistsError, match=r"out.dbf exists; pass --overwrite"):
        write_vector(frame, folder / "out.shp")
    assert sorted(p.name for p in folder.iterdir()) == ["out.dbf"]
    write_vector(frame.iloc[:3], folder / "out.shp", overwrite=True)
    (folder / "out.qix").write_text("stale spatial index")
    write_vector(frame, folder / "out.shp", overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == SHAPEFILE_SET
    assert len(_read(folder / "out.shp")) == len(frame)


def test_an_unknown_suffix_lists_the_valid_ones(folder: Path, frame: gpd.GeoDataFrame) -> None:
    with pytest.raises(ConfigError, match=r"unknown suffix '.csv'; use one of .gpkg, .shp, .geojson, .parquet"):
        write_vector(frame, folder / "out.csv")


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".geojson", ".parquet"])
def test_a_failed_write_leaves_no_file(
    folder: Path, frame: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    def write_then_fail(original):  # type: ignore[no-untyped-def]
        def write(*args, **kwargs):  # type: ignore[no-untyped-def]
            original(*args, **kwargs)
            raise OSError("disk full")

        return write

    monkeypatch.setattr(pyogrio, "write_dataframe", write_then_fail(pyogrio.write_dataframe))
    monkeypatch.setattr(pyarrow.parquet, "write_table", write_then_fail(pyarrow.parquet.write_table))
    with pytest.raises(OSError, match="disk full"):
        write_vector(frame, folder / f"out{suffix}")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_a_run_killed_while_writing_leaves_nothing_that_looks_finished(
    tmp_path: Path, write_raster: WriteRaster, suffix: str
) -> None:
    raster = write_raster(class_scene(30, 41))
    output = tmp_path / f"out{suffix}"
    code = (
        "import os, signal, pyogrio\n"
        "from cmt_geo.vector import vectorize\n"
        "original = pyogrio.write_dataframe\n"
        "def write_then_die(*args, **kwargs):\n"
        "    original(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "pyogrio.write_dataframe = write_then_die\n"
        f"vectorize({str(raster)!r}, {str(output)!r})\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == -signal.SIGKILL, run.stderr
    left = sorted(p.name for p in tmp_path.iterdir() if p != raster)
    assert left, "the killed run wrote its staging files"
    assert all(name.startswith(f".out{suffix}.cmtgeo-staging-") for name in left), left
    vectorize(raster, output)  # the next run sweeps what the killed one left
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert os.path.getsize(output) > 0
