"""ISPRS Vaihingen and Potsdam read from fixtures in their real unpacked layouts."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from cmt_geo.data import IGNORE_INDEX, PatchWindow, Potsdam, SplitOptions, Vaihingen, check_dataset
from cmt_geo.errors import ConfigError, DatasetNotFoundError, InvalidLabelError, InvalidRasterError

from .conftest import fixture_script

VAIHINGEN = fixture_script("vaihingen")
POTSDAM = fixture_script("potsdam")
ALL = SplitOptions(val_fraction=0)
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _whole(dataset: Vaihingen | Potsdam, tile: int) -> dict[str, torch.Tensor]:
    source = dataset.tiles[tile]
    return dataset[PatchWindow(tile, 0, 0, source.height, source.width)]


def test_vaihingen_decodes_every_colour_and_keeps_pixels(pristine: Callable[[str], Path]) -> None:
    root = pristine("vaihingen")
    dataset = Vaihingen(root, split_options=ALL)
    assert [tile.files.name for tile in dataset.tiles] == ["1", "3", "5", "7"]
    sample = _whole(dataset, 0)
    assert sample["image"].shape == (3, VAIHINGEN.HEIGHT, VAIHINGEN.WIDTH)
    assert sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (VAIHINGEN.HEIGHT, VAIHINGEN.WIDTH)
    assert sample["mask"].dtype == torch.int64
    image = _read(root / "top" / "top_mosaic_09cm_area1.tif")
    assert torch.equal(sample["image"], torch.from_numpy(image).float())
    label = np.moveaxis(_read(root / "gts_for_participants" / "top_mosaic_09cm_area1.tif"), 0, -1)
    for index, color in enumerate(VAIHINGEN.COLORS):
        at_color = torch.from_numpy((label == color).all(-1))
        assert at_color.any(), f"fixture lacks {color}"
        assert (sample["mask"][at_color] == index).all(), f"colour {color} is not class {index}"
    assert dataset.band_names == ("nir", "red", "green")
    assert dataset.scored_classes == (0, 1, 2, 3, 4)
    assert dataset.classes[5] == "clutter"


def test_vaihingen_test_split_uses_eroded_labels_with_ignored_boundaries(pristine: Callable[[str], Path]) -> None:
    root = pristine("vaihingen")
    test = Vaihingen(root, split="test")
    assert [tile.files.name for tile in test.tiles] == ["2", "4"]
    assert all(tile.files.label.name.endswith("_noBoundary.tif") for tile in test.tiles)
    mask = _whole(test, 0)["mask"]
    assert (mask[::8] == IGNORE_INDEX).all()
    assert (mask[1::8] != IGNORE_INDEX).all()
    full = Vaihingen(root, split="test", labels="full")
    assert (_whole(full, 0)["mask"] != IGNORE_INDEX).all()


def test_vaihingen_val_is_carved_from_train_by_tile(pristine: Callable[[str], Path]) -> None:
    root = pristine("vaihingen")
    options = SplitOptions(val_fraction=0.5, seed=1)
    train = {t.files.name for t in Vaihingen(root, "train", split_options=options).tiles}
    val = {t.files.name for t in Vaihingen(root, "val", split_options=options).tiles}
    assert train.isdisjoint(val)
    assert train | val == {"1", "3", "5", "7"}
    assert len(val) == 2
    chosen = SplitOptions(val_tiles=["3"])
    assert [t.files.name for t in Vaihingen(root, "val", split_options=chosen).tiles] == ["3"]


def test_vaihingen_has_no_rgb(pristine: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError, match="no 'RGB' imagery; use one of IRRG"):
        Vaihingen(pristine("vaihingen"), bands="RGB")


def test_potsdam_band_orders_come_from_the_right_files(pristine: Callable[[str], Path]) -> None:
    root = pristine("potsdam")
    rgbir = torch.from_numpy(_read(root / "4_Ortho_RGBIR" / "top_potsdam_2_10_RGBIR.tif")).float()
    for order, bands, names in (
        ("RGBIR", [0, 1, 2, 3], ("red", "green", "blue", "nir")),
        ("RGB", [0, 1, 2], ("red", "green", "blue")),  # no 2_Ortho_RGB folder: read from RGBIR
        ("IRRG", [3, 0, 1], ("nir", "red", "green")),
    ):
        dataset = Potsdam(root, bands=order, split_options=ALL)
        assert dataset.band_names == names
        assert torch.equal(_whole(dataset, 0)["image"], rgbir[bands]), order
    assert Potsdam(root, bands="IRRG", split_options=ALL).tiles[0].files.image.parent.name == "3_Ortho_IRRG"


def test_potsdam_splits_exclusion_and_colours(pristine: Callable[[str], Path]) -> None:
    root = pristine("potsdam")
    train = Potsdam(root, split_options=ALL, exclude_tiles=["2_11"])
    assert [t.files.name for t in train.tiles] == ["2_10", "3_10"]
    assert [t.files.name for t in Potsdam(root, split="test").tiles] == ["2_13"]
    mask = _whole(train, 0)["mask"]
    assert mask[:8, : 8 * len(POTSDAM.COLORS)].reshape(8, -1, 8)[:, :, 0].unique(dim=0).tolist() == [[0, 1, 2, 3, 4, 5]]


def test_partial_dataset_loads_and_warns(dataset_copy: Callable[[str], Path], caplog: pytest.LogCaptureFixture) -> None:
    root = dataset_copy("vaihingen")
    Vaihingen(root, split_options=ALL)
    assert "holds 4 of 16 official train tiles; missing 11, 13" in caplog.text


@pytest.mark.parametrize(
    ("breakage", "error", "message"),
    [
        ("missing_label", DatasetNotFoundError, r"area3\.tif: image has no label"),
        ("orphan_label", DatasetNotFoundError, r"area9\.tif: label has no image"),
        ("size", InvalidRasterError, r"is 40x16 px but its image top_mosaic_09cm_area1\.tif is 40x32 px"),
        ("bands", InvalidRasterError, r"area5\.tif: has 4 bands, expected 3"),
        ("unreadable", InvalidRasterError, r"area7\.tif: cannot be read"),
        ("colour", InvalidLabelError, r"holds \(1, 2, 3\), which is not a class"),
        ("no_imagery", DatasetNotFoundError, r"no Vaihingen IRRG imagery in .*top; unpack the imagery archive"),
    ],
)
def test_broken_folders_raise_clear_errors(
    dataset_copy: Callable[[str], Path], breakage: str, error: type[Exception], message: str
) -> None:
    root = dataset_copy("vaihingen")
    labels = root / "gts_for_participants"
    if breakage == "missing_label":
        (labels / "top_mosaic_09cm_area3.tif").unlink()
    elif breakage == "orphan_label":
        shutil.copy(labels / "top_mosaic_09cm_area1.tif", labels / "top_mosaic_09cm_area9.tif")
    elif breakage == "size":
        VAIHINGEN._write(labels / "top_mosaic_09cm_area1.tif", np.zeros((3, 16, 40), dtype=np.uint8))
    elif breakage == "bands":
        VAIHINGEN._write(root / "top" / "top_mosaic_09cm_area5.tif", np.zeros((4, 32, 40), dtype=np.uint8))
    elif breakage == "unreadable":
        (root / "top" / "top_mosaic_09cm_area7.tif").write_bytes(b"truncated")
    elif breakage == "colour":
        VAIHINGEN._write(labels / "top_mosaic_09cm_area1.tif", np.full((3, 32, 40), [[[1]], [[2]], [[3]]], np.uint8))
    else:
        shutil.rmtree(root / "top")
    with pytest.raises(error, match=message):
        _whole(Vaihingen(root, split_options=ALL), 0)


def test_problems_of_the_test_split_do_not_block_training(dataset_copy: Callable[[str], Path]) -> None:
    root = dataset_copy("vaihingen")
    (root / "top_mosaic_09cm_area2_noBoundary.tif").unlink()
    (root / "gts_for_participants" / "top_mosaic_09cm_area2.tif").unlink()
    assert len(Vaihingen(root, split_options=ALL).tiles) == 4
    with pytest.raises(DatasetNotFoundError, match=r"area2\.tif: image has no label.*labels='full'.*--labels-kind"):
        Vaihingen(root, split="test")


def test_test_split_without_eroded_labels_falls_back_to_full_labels_and_says_so(
    dataset_copy: Callable[[str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    root = dataset_copy("vaihingen")
    for eroded in root.glob("*_noBoundary.tif"):
        eroded.unlink()
    test = Vaihingen(root, split="test")
    assert [tile.files.label.name for tile in test.tiles if tile.files.label] == [
        "top_mosaic_09cm_area2.tif",
        "top_mosaic_09cm_area4.tif",
    ]
    assert "the test split uses their full labels instead" in caplog.text
    assert check_dataset("vaihingen", root).ok
    with pytest.raises(DatasetNotFoundError, match="image has no label"):
        Vaihingen(root, split="test", labels="eroded")


def test_plot_draws_image_mask_and_prediction(pristine: Callable[[str], Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    dataset = Vaihingen(pristine("vaihingen"), split_options=ALL)
    sample = dataset[PatchWindow(0, 0, 0, 16, 16)]
    assert len(dataset.plot(sample).axes) == 2
    sample["prediction"] = sample["mask"].clone()
    figure = dataset.plot(sample, suptitle="area 1")
    assert [axis.get_title() for axis in figure.axes] == ["Image", "Mask", "Prediction"]
    mask_pixels = figure.axes[1].get_images()[0].get_array()
    expected = np.array(Vaihingen.colors, dtype=np.uint8)[sample["mask"].numpy()]
    assert np.array_equal(np.asarray(mask_pixels), expected)


def test_excluded_tiles_are_ignored_with_their_problems(dataset_copy: Callable[[str], Path]) -> None:
    root = dataset_copy("potsdam")
    (root / "5_Labels_all" / "top_potsdam_2_11_label.tif").unlink()
    (root / "4_Ortho_RGBIR" / "top_potsdam_3_10_RGBIR.tif").unlink()  # its labels remain, without an image
    (root / "3_Ortho_IRRG" / "top_potsdam_3_10_IRRG.tif").unlink()
    with pytest.raises(DatasetNotFoundError, match="image has no label"):
        Potsdam(root, split_options=ALL, exclude_tiles=["3_10"])
    with pytest.raises(DatasetNotFoundError, match="label has no image"):
        Potsdam(root, split_options=ALL, exclude_tiles=["2_11"])
    assert [t.files.name for t in Potsdam(root, split_options=ALL, exclude_tiles=["2_11", "3_10"]).tiles] == ["2_10"]
