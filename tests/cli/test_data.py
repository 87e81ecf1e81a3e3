"""`cmtgeo data check` and `cmtgeo data synthetic`."""

from __future__ import annotations

import json
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
    assert "tiles per split: test 2, train 3, val 1" in result.stdout
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
    result = runner.invoke(cmtgeo, ["data", "check", "--dataset", "raster", str(out)])
    assert result.exit_code == 0, result.output
    assert "tiles per split: train 1" in result.stdout
    (out / "images" / "scene.tif").rename(out / "images" / "a.tif")
    (out / "labels" / "scene.tif").rename(out / "labels" / "b.tif")
    (out / "images" / "c.tif").write_bytes(b"junk")
    with pytest.raises(CmtGeoError, match="2 more problems: run `cmtgeo data check") as error:
        RasterSegmentation(out / "images", out / "labels", classes=["x"])
    command = str(error.value).split("`")[1]
    result = runner.invoke(cmtgeo, shlex.split(command)[1:])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("error: ") == 4, result.stderr  # a and c lack labels, b lacks its image, c is junk
    assert "c.tif: cannot be read" in result.stderr


def test_progress_json_writes_json_lines_on_stdout_and_none_writes_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["data", "synthetic", "--size", "64", "--layout", "loveda", "--tiles", "2"]
    result = runner.invoke(cmtgeo, [*args, str(tmp_path / "json"), "--progress", "json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(r["done"], r["total"]) for r in records] == [(1, 3), (2, 3), (3, 3)]
    assert records[-1]["fraction"] == 1.0
    assert "[" not in result.stderr
    quiet = runner.invoke(cmtgeo, [*args, str(tmp_path / "none"), "--progress", "none"])
    assert quiet.stdout.splitlines() == [f"wrote a synthetic loveda dataset to {tmp_path / 'none'}"]
    assert quiet.stderr == ""
    bar = runner.invoke(cmtgeo, [*args, str(tmp_path / "bar")])
    assert "3/3" in bar.stderr
    assert not any(line.startswith("{") for line in bar.stdout.splitlines())


def test_synthetic_overwrite_never_touches_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path / "work")
    runner = CliRunner()
    for target in (".", ".."):
        result = runner.invoke(cmtgeo, ["data", "synthetic", target, "--size", "64", "--overwrite"])
        assert result.exit_code == 1
        assert "current folder, one of its parents" in result.stderr
    result = runner.invoke(cmtgeo, ["data", "synthetic", str(tmp_path / "work"), "--size", "64", "--overwrite"])
    assert result.exit_code == 1
    assert (tmp_path / "work" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_bad_numbers_are_usage_errors_naming_the_option(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cmtgeo, ["data", "synthetic", str(tmp_path / "x"), "--seed", "-1"])
    assert result.exit_code == 2
    assert "'--seed'" in result.stderr
    result = runner.invoke(cmtgeo, ["data", "synthetic", str(tmp_path / "x"), "--size", "1000000000"])
    assert result.exit_code == 2
    assert "'--size'" in result.stderr
    assert "32<=x<=8192" in result.stderr
    assert not (tmp_path / "x").exists()


def test_check_of_a_missing_folder_answers_at_once_without_loading_torchgeo(tmp_path: Path) -> None:
    code = (
        "import sys; from click.testing import CliRunner; from cmt_geo_cli.main import cmtgeo; "
        f"r = CliRunner().invoke(cmtgeo, ['data', 'check', '--dataset', 'vaihingen', {str(tmp_path / 'absent')!r}]); "
        "print(r.exit_code, 'torchgeo' in sys.modules); print(r.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("2 False"), out
    assert "does not exist" in out


def test_labels_kind_chooses_the_isprs_labels(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "potsdam"
    assert runner.invoke(cmtgeo, ["data", "synthetic", str(out), "--size", "64", "--layout", "potsdam"]).exit_code == 0
    for eroded in (out / "5_Labels_all_noBoundary").iterdir():
        eroded.unlink()
    auto = runner.invoke(cmtgeo, ["data", "check", "--dataset", "potsdam", str(out)])
    assert auto.exit_code == 0, auto.output
    assert "the test split uses their full labels instead" in auto.stderr
    eroded = runner.invoke(cmtgeo, ["data", "check", "--dataset", "potsdam", str(out), "--labels-kind", "eroded"])
    assert eroded.exit_code == 1
    assert "image has no label" in eroded.stderr
    assert (
        runner.invoke(cmtgeo, ["data", "check", "--dataset", "potsdam", str(out), "--labels-kind", "full"]).exit_code
        == 0
    )
    wrong = runner.invoke(cmtgeo, ["data", "check", "--dataset", "uavid", str(out), "--labels-kind", "full"])
    assert wrong.exit_code == 1
    assert "labels_kind (--labels-kind) does not apply to uavid" in wrong.stderr
