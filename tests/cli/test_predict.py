"""`cmtgeo predict`: one raster or many, JSON progress, refusal without --overwrite, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import rasterio
import torch
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

from ..conftest import write_raster


def test_predict_writes_the_class_raster_and_reports_json_progress(tmp_path: Path, checkpoint: Path) -> None:
    source = write_raster(tmp_path / "ortho.tif", 100, 120)
    args = ["predict", str(source), "-o", str(tmp_path / "classes.tif"), "--checkpoint", str(checkpoint)]
    result = CliRunner().invoke(
        cmtgeo, [*args, "--tile-size", "64", "--confidence", str(tmp_path / "c.tif"), "--progress", "json"]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert records[-1]["done"] == records[-1]["total"] == 6
    assert f"wrote {tmp_path / 'classes.tif'}" in result.stdout
    with rasterio.open(tmp_path / "classes.tif") as out, rasterio.open(source) as src:
        assert (out.transform, out.shape) == (src.transform, src.shape)
    again = CliRunner().invoke(cmtgeo, args)
    assert again.exit_code == 1
    assert "pass --overwrite" in again.stderr
    assert CliRunner().invoke(cmtgeo, [*args, "--overwrite", "--tta", "flip", "--tile-size", "64"]).exit_code == 0


def test_a_folder_of_inputs_writes_a_folder_of_outputs(tmp_path: Path, checkpoint: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        write_raster(tmp_path / "in" / f"{name}.tif", 64, 70, seed=len(name))
    args = ["predict", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint)]
    result = CliRunner().invoke(cmtgeo, [*args, "--progress", "none"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif"]


def test_bad_input_bands_and_checkpoints_are_one_line_errors(tmp_path: Path, checkpoint: Path) -> None:
    runner = CliRunner()
    (tmp_path / "notes.tif").write_text("not a raster")
    base = ["predict", "-o", str(tmp_path / "out.tif"), "--checkpoint", str(checkpoint)]
    result = runner.invoke(cmtgeo, [*base, str(tmp_path / "notes.tif")])
    assert result.exit_code == 1
    assert "cannot read raster" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    six = write_raster(tmp_path / "six.tif", 64, 64, descriptions=tuple(f"b{i}" for i in range(6)))
    result = runner.invoke(cmtgeo, [*base, str(six)])
    assert result.exit_code == 1
    assert "--bands" in result.stderr
    assert runner.invoke(cmtgeo, [*base, str(six), "--bands", "1,2,x"]).exit_code == 2
    missing = ["predict", str(six), "-o", str(tmp_path / "o.tif"), "--checkpoint", str(tmp_path / "none.ckpt")]
    assert runner.invoke(cmtgeo, missing).exit_code == 2
    (tmp_path / "bad.ckpt").write_bytes(b"\x00" * 64)
    corrupt = runner.invoke(cmtgeo, [*missing[:4], "--checkpoint", str(tmp_path / "bad.ckpt")])
    assert corrupt.exit_code == 1
    assert "checkpoint" in corrupt.stderr
    assert not (tmp_path / "out.tif").exists()


def test_compile_without_a_working_compiler_is_a_one_line_error(tmp_path: Path, checkpoint: Path) -> None:
    source = write_raster(tmp_path / "ortho.tif", 64, 64)
    args = ["predict", str(source), "-o", str(tmp_path / "classes.tif"), "--checkpoint", str(checkpoint)]
    with torch._inductor.config.patch({"cpp.cxx": (None, "no-such-c++")}):
        result = CliRunner().invoke(cmtgeo, [*args, "--compile", "--progress", "none"])
    assert result.exit_code == 1
    error = result.stderr.strip().splitlines()[-1]
    assert "torch.compile could not compile the model" in error
    assert "without --compile" in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ortho.tif"]
