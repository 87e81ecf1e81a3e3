"""`cmtgeo info CHECKPOINT [--input RASTER]`: the card from the header, and the band mapping predict would use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

from ..conftest import BANDS, CLASSES, COLORS, write_raster


def _run(*args: str) -> dict:
    result = CliRunner().invoke(cmtgeo, ["info", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_checkpoint_card_as_json(checkpoint: Path) -> None:
    report = _run(str(checkpoint))
    assert report["checkpoint"] == str(checkpoint)
    card = report["card"]
    assert tuple(card["class_names"]) == CLASSES
    assert [tuple(color) for color in card["class_colors"]] == list(COLORS)
    assert tuple(card["normalization"]["bands"]) == BANDS
    assert "bands" not in report


def test_band_mapping_by_description(checkpoint: Path, tmp_path: Path) -> None:
    raster = write_raster(tmp_path / "in.tif", 32, 32, descriptions=("nir", "blue", "green", "red", "swir"))
    bands = _run(str(checkpoint), "--input", str(raster))["bands"]
    assert bands == {
        "model_bands": list(BANDS),
        "input_bands": [4, 3, 2, 1],
        "input_descriptions": ["nir", "blue", "green", "red", "swir"],
        "problem": None,
    }


def test_band_mapping_problem_is_reported_not_raised(checkpoint: Path, tmp_path: Path) -> None:
    raster = write_raster(tmp_path / "in.tif", 32, 32, descriptions=("a", "b", "c"))
    bands = _run(str(checkpoint), "--input", str(raster))["bands"]
    assert bands["input_bands"] is None
    assert "has 3 bands but the model takes 4" in bands["problem"]


def test_text_output_names_the_classes(checkpoint: Path) -> None:
    result = CliRunner().invoke(cmtgeo, ["info", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert "water, field, forest" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--input", "{raster}"], "--input needs a CHECKPOINT"), (["{raster}"], "not a cmt-geo checkpoint")],
)
def test_errors(tmp_path: Path, args: list[str], message: str) -> None:
    raster = write_raster(tmp_path / "in.tif", 32, 32)
    result = CliRunner().invoke(cmtgeo, ["info", *(arg.format(raster=raster) for arg in args)])
    assert result.exit_code in (1, 2)
    assert message in result.stderr
