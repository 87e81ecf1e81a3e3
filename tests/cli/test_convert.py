"""`cmtgeo convert`: reference weights become a checkpoint that `cmtgeo predict` uses; refusals are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio
import torch
from click.testing import CliRunner
from cmt_geo_cli.main import cmtgeo

from cmt_geo.models import create_model, read_card

from ..conftest import write_raster
from ..models.reference_fixtures import reference_layout


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cmt_unet_tiny-sized weights (3 classes) in the reference's layout, saved as a Lightning checkpoint is."""
    torch.manual_seed(0)
    state = reference_layout(create_model("cmt_unet_tiny", num_classes=3))
    path = tmp_path_factory.mktemp("reference") / "weights.pth"
    torch.save({"state_dict": {f"net.{key}": value for key, value in state.items()}, "epoch": 3}, path)
    return path


def test_converted_weights_predict_with_the_card_given(tmp_path: Path, reference: Path) -> None:
    checkpoint = tmp_path / "model.ckpt"
    args = ["convert", str(reference), "-o", str(checkpoint), "--num-classes", "3", "--classes", "road, roof,tree"]
    args += ["--bands", "red,green,blue", "--mean", "120,110,100", "--std", "50,45,40", "--patch-size", "64"]
    result = CliRunner().invoke(cmtgeo, [*args, "--gsd", "0.5"])
    assert result.exit_code == 0, result.output
    assert f"wrote {checkpoint}: cmt_unet_tiny, classes road, roof, tree" in result.stdout
    card = read_card(checkpoint)
    assert (card.class_names, card.band_names, card.patch_size) == (
        ("road", "roof", "tree"),
        ("red", "green", "blue"),
        64,
    )
    assert (card.normalization.mean, card.normalization.std) == ((120.0, 110.0, 100.0), (50.0, 45.0, 40.0))
    assert card.ground_sample_distance == 0.5

    again = CliRunner().invoke(cmtgeo, args)
    assert again.exit_code == 1
    assert "pass --overwrite" in again.stderr

    source = write_raster(tmp_path / "tile.tif", 70, 90, descriptions=("red", "green", "blue"))
    predicted = CliRunner().invoke(
        cmtgeo, ["predict", str(source), "-o", str(tmp_path / "classes.tif"), "--checkpoint", str(checkpoint)]
    )
    assert predicted.exit_code == 0, predicted.output
    with rasterio.open(tmp_path / "classes.tif") as classes:
        assert classes.shape == (70, 90)
        assert set(classes.read(1).ravel().tolist()) <= {0, 1, 2}


def test_defaults_come_from_the_weights_and_the_reference(tmp_path: Path, reference: Path) -> None:
    result = CliRunner().invoke(cmtgeo, ["convert", str(reference), "-o", str(tmp_path / "model.ckpt")])
    assert result.exit_code == 0, result.output
    card = read_card(tmp_path / "model.ckpt")
    assert card.class_names == ("class_0", "class_1", "class_2")
    assert card.band_names == ("band_1", "band_2", "band_3")
    assert (card.normalization.mean, card.normalization.std, card.patch_size) == ((0.0,) * 3, (255.0,) * 3, 256)
    assert len(set(card.class_colors)) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--num-classes", "6"], "holds a model of 3 classes, but num_classes gives 6"),
        (["--mean", "1,2,3"], "give mean and std together"),
        (["--bands", "nir,red,green,blue"], "the weights take 3 bands, but bands has 4 values"),
        (["--std", "1,x,3", "--mean", "1,2,3"], "is not a comma-separated list of numbers"),
    ],
)
def test_options_that_do_not_fit_are_one_line_errors(
    tmp_path: Path, reference: Path, options: list[str], message: str
) -> None:
    result = CliRunner().invoke(cmtgeo, ["convert", str(reference), "-o", str(tmp_path / "model.ckpt"), *options])
    assert result.exit_code in (1, 2)
    assert message in result.stderr
    assert not (tmp_path / "model.ckpt").exists()


def test_weights_that_do_not_map_are_refused_with_their_keys(tmp_path: Path) -> None:
    state = reference_layout(create_model("cmt_unet_tiny", num_classes=2))
    state["decoder.aux_head.conv.weight"] = torch.zeros(4)
    torch.save(state, tmp_path / "weights.pth")
    result = CliRunner().invoke(cmtgeo, ["convert", str(tmp_path / "weights.pth"), "-o", str(tmp_path / "m.ckpt")])
    assert result.exit_code == 1
    assert "1 reference keys without a counterpart: decoder.aux_head.conv.weight" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.ckpt").exists()


def test_help_shows_an_example() -> None:
    result = CliRunner().invoke(cmtgeo, ["convert", "--help"])
    assert result.exit_code == 0
    assert "$ cmtgeo convert weights.pth -o model.ckpt" in result.stdout
