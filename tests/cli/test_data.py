"""`cmtgeo data check` and `cmtgeo data synthetic`."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

from cmt_geo.data import RasterSegmentation
from cmt_geo.errors import CmtGeoError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_synthetic_then_check_passes_with_a_summary(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "vaihingen"
    result = runner.invoke(cmtgeo, ["data", "synthetic", str(out), "--size", "64", "--layout", "vaihingen"])
    assert result.exit_code == 0, result.output
    assert (out / "top" / "top_mosaic_09cm_area1.tif").is_file()
    result = runner.invoke(cmtgeo, ["data", "check", "--dataset", "vaihingen", str(out)])
    assert result.exit_code == 0, result.output
    assert "tiles per split: test 2, train 4" in result.stdout
    assert "building:" in result.stdout
    assert "warning:" in result.stderr


def test_check_lists_problems_and_exits_1(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "uavid"
    assert runner.invoke(cmtgeo, ["data", "synthetic", str(out), "--size", "64", "--layout", "uavid"]).exit_code == 0
    label = next((out / "uavid_train").glob("seq*/Labels/*.png"))
    label.unlink()
    result = runner.invoke(cmtgeo, ["data", "check", "--dataset", "uavid", str(out)])
    assert result.exit_code == 1
    assert f"error: {label.parent.parent / 'Images' / label.name}: image has no label" in result.stderr
    assert result.stderr.rstrip().endswith("fix the files listed above and check again")


def test_synthetic_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "scene"
    assert runner.invoke(cmtgeo, ["data", "synthetic", str(out), "--size", "64"]).exit_code == 0
    result = runner.invoke(cmtgeo, ["data", "synthetic", str(out), "--size", "64"])
    assert result.exit_code == 1
    assert "pass --overwrite" in result.stderr
    assert runner.invoke(cmtgeo, ["data", "synthetic", str(out), "--size", "64", "--overwrite"]).exit_code == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cmtgeo, ["data", "check", str(tmp_path)]).exit_code == 2
    assert runner.invoke(cmtgeo, ["data", "check", "--dataset", "coco", str(tmp_path)]).exit_code == 2
    assert runner.invoke(cmtgeo, ["data", "synthetic", str(tmp_path), "--size", "8"]).exit_code == 2


def test_the_command_line_loads_without_torchgeo() -> None:
    code = "import sys, cmt_geo_cli.main; print(sorted({'torchgeo', 'torch', 'rasterio'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_check_command_that_raster_errors_name_runs(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "scene"
    assert runner.invoke(cmtgeo, ["data", "synthetic", str(out), "--size", "64"]).exit_code == 0
    pair = ["--dataset", "raster", str(out / "image.tif"), "--labels", str(out / "label.tif")]
    result = runner.invoke(cmtgeo, ["data", "check", *pair])
    assert result.exit_code == 0, result.output
    assert "tiles per split: train 1" in result.stdout
    (out / "images").mkdir()
    (out / "labels").mkdir()
    (out / "image.tif").rename(out / "images" / "a.tif")
    (out / "label.tif").rename(out / "labels" / "b.tif")
    (out / "images" / "c.tif").write_bytes(b"junk")
    with pytest.raises(CmtGeoError, match="2 more problems: run `cmtgeo data check") as error:
        RasterSegmentation(out / "images", out / "labels", classes=["x"])
    command = str(error.value).split("`")[-2]
    result = runner.invoke(cmtgeo, shlex.split(command)[1:])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("error: ") == 4, result.stderr  # a and c lack labels, b lacks its image, c is junk
    assert "c.tif: cannot be read" in result.stderr
