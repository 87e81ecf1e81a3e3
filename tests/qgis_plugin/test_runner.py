"""The `cmtgeo` runner: arguments, finding the executable, progress phases, errors, and cancel leaving no outputs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cmt_geo_qgis.runner import (
    INSTALL_MESSAGE,
    CmtGeoNotFoundError,
    SegmentRequest,
    VectorizeRequest,
    _ProgressPhases,
    checkpoint_info,
    child_environment,
    cmtgeo_version,
    error_line,
    resolve_executable,
    run_cmtgeo,
)


def test_segment_arguments() -> None:
    request = SegmentRequest("in.tif", "m.ckpt", "out.tif", "out.gpkg", tile_size=256, overlap=32, device="cuda:1")
    assert request.arguments() == [
        *("predict", "in.tif", "-o", "out.tif", "--checkpoint", "m.ckpt", "--vector", "out.gpkg"),
        *("--tile-size", "256", "--overlap", "32", "--device", "cuda:1", "--tta", "none"),
        *("--overwrite", "--progress", "json"),
    ]
    assert request.outputs() == ("out.tif", "out.gpkg")
    plain = SegmentRequest("in.tif", "m.ckpt", "out.tif", tta="d4")
    assert "--vector" not in plain.arguments()
    assert "--tile-size" not in plain.arguments()
    assert plain.arguments()[-5:] == ["--tta", "d4", "--overwrite", "--progress", "json"]


def test_vectorize_arguments() -> None:
    request = VectorizeRequest("classes.tif", "polygons.shp", simplify="2.5", min_area=4)
    assert request.arguments() == [
        *("vectorize", "classes.tif", "-o", "polygons.shp", "--simplify", "2.5", "--min-area", "4.0"),
        *("--overwrite", "--progress", "json"),
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SegmentRequest("a.tif", "m.ckpt", "o.tif", device="gpu"), "device 'gpu'"),
        (lambda: SegmentRequest("a.tif", "m.ckpt", "o.tif", tta="all"), "tta 'all'"),  # type: ignore[arg-type]
        (lambda: SegmentRequest("a.tif", "m.ckpt", "o.tif", "o.parquet"), "must end in one of .gpkg"),
        (lambda: VectorizeRequest("c.tif", "p.gpkg", simplify="lots"), "simplify 'lots'"),
        (lambda: VectorizeRequest("c.tif", "p.gpkg", min_area=-1), "min_area -1"),
    ],
)
def test_invalid_requests(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho cmtgeo 9.9\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_resolve_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = tmp_path / "env"
    script = _executable(environment / "bin" / "cmtgeo")
    assert resolve_executable(str(environment)) == str(script)
    assert resolve_executable(str(script)) == str(script)
    monkeypatch.setenv("PATH", str(script.parent))
    assert resolve_executable(None) == str(script)
    assert cmtgeo_version(str(script)) == "cmtgeo 9.9"


def test_missing_executable_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CmtGeoNotFoundError, match="no-such-env is not cmtgeo") as raised:
        resolve_executable(str(tmp_path / "no-such-env"))
    assert INSTALL_MESSAGE in str(raised.value)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CmtGeoNotFoundError) as raised:
        resolve_executable("")
    assert str(raised.value) == INSTALL_MESSAGE
    assert "pip install cmt-geo" in INSTALL_MESSAGE
    assert "Settings" in INSTALL_MESSAGE


def test_child_environment_drops_qgis_python_and_gdal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/usr/share/qgis/python")
    monkeypatch.setenv("PROJ_LIB", "/qgis/proj")
    monkeypatch.setenv("KEEP_ME", "1")
    environment = child_environment()
    assert "PYTHONPATH" not in environment
    assert "PROJ_LIB" not in environment
    assert environment["KEEP_ME"] == "1"
    assert environment["PYTHONUNBUFFERED"] == "1"


def test_progress_phases_fill_their_share() -> None:
    phases = _ProgressPhases((0.85, 0.15))
    lines = [(1, 4, 0.25), (4, 4, 1.0), (1, 5, 0.2), (5, 5, 1.0)]
    fractions = [phases.update({"done": d, "total": t, "fraction": f}) for d, t, f in lines]
    assert fractions == pytest.approx([0.2125, 0.85, 0.88, 1.0])
    assert phases.update({"done": 3, "total": None, "fraction": None}) is None


def test_error_line() -> None:
    assert error_line("INFO: loading\nError: bad raster; fix it\n", 1) == "bad raster; fix it"
    assert error_line("Traceback\nSegfault\n", -11) == "Segfault"
    assert error_line("", -9) == "cmtgeo stopped with exit status -9 without a message"


def test_checkpoint_info_reports_card_and_bands(cmtgeo: str, fixtures: Path) -> None:
    report = checkpoint_info(cmtgeo, str(fixtures / "model.ckpt"), str(fixtures / "small.tif"))
    assert report["card"]["class_names"] == list(json.loads(json.dumps(["water", "field", "forest"])))
    assert report["bands"]["input_bands"] == [1, 2, 3, 4]


def test_failure_is_the_cli_one_line_error_and_leaves_no_output(cmtgeo: str, fixtures: Path, tmp_path: Path) -> None:
    output = tmp_path / "classes.tif"
    request = SegmentRequest(str(fixtures / "three_bands.tif"), str(fixtures / "model.ckpt"), str(output))
    logged: list[str] = []
    result = run_cmtgeo(cmtgeo, request, on_log=logged.append)
    assert result.status == "failed"
    assert result.exit_code == 1
    assert "has 3 bands but the model takes 4" in result.message
    assert "\n" not in result.message
    assert logged[0].startswith(f"$ {cmtgeo} predict ")
    assert any(line.startswith("Error: ") for line in logged)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("phase", ["predict", "vectorize"])
def test_cancel_stops_cmtgeo_and_leaves_no_outputs(cmtgeo: str, fixtures: Path, tmp_path: Path, phase: str) -> None:
    """Cancel while predicting (100 windows), and once polygons are being made: then the class raster this run
    finished is removed too. Files that were there before stay."""
    keep = tmp_path / "mine.txt"
    keep.write_text("not cmt-geo's")
    source = fixtures / ("large.tif" if phase == "predict" else "small.tif")
    request = SegmentRequest(
        str(source), str(fixtures / "model.ckpt"), str(tmp_path / "c.tif"), str(tmp_path / "c.gpkg")
    )
    seen: list[float] = []
    threshold = 0.0 if phase == "predict" else 0.85
    result = run_cmtgeo(
        cmtgeo,
        request,
        on_progress=lambda fraction, _: seen.append(fraction),
        is_canceled=lambda: bool(seen) and seen[-1] >= threshold,
    )
    assert result.status == "canceled"
    assert result.outputs == ()
    if phase == "predict":
        assert result.exit_code == 143  # SIGTERM reached the CLI, which removed its staging files and said so
        assert "partial outputs were removed" in result.log
        assert seen[-1] < 0.85
    assert sorted(os.listdir(tmp_path)) == ["mine.txt"]
