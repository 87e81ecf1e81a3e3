"""UAVid read from a fixture in its real layout: PNG frames in pixel space, splits by sequence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cmt_geo.data import IGNORE_INDEX, PatchWindow, SplitOptions, UAVid
from cmt_geo.errors import DatasetNotFoundError, InvalidLabelError, InvalidRasterError

from .conftest import fixture_script

UAVID = fixture_script("uavid")
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_every_colour_decodes_to_its_class(pristine: Callable[[str], Path]) -> None:
    root = pristine("uavid")
    dataset = UAVid(root, split_options=SplitOptions(val_fraction=0))
    assert dataset.crs is None
    assert dataset.res == (1.0, 1.0)
    assert len(dataset.tiles) == 8
    assert dataset.tiles[0].files.name == "seq1/000000"
    sample = dataset[PatchWindow(0, 0, 0, UAVID.HEIGHT, UAVID.WIDTH)]
    assert sample["image"].shape == (3, UAVID.HEIGHT, UAVID.WIDTH)
    image = np.array(Image.open(root / "uavid_train/seq1/Images/000000.png"))
    assert torch.equal(sample["image"], torch.from_numpy(np.moveaxis(image, -1, 0)).float())
    label = np.asarray(Image.open(root / "uavid_train/seq1/Labels/000000.png"))
    for index, color in enumerate(UAVID.COLORS):
        at_color = torch.from_numpy((label == color).all(-1))
        assert at_color.any()
        assert (sample["mask"][at_color] == index).all(), UAVid.classes[index]


def test_splits_by_sequence_and_test_is_the_official_val(pristine: Callable[[str], Path]) -> None:
    root = pristine("uavid")
    options = SplitOptions(val_fraction=0.25, seed=0, test_source="val")
    train = {t.files.group for t in UAVid(root, "train", options).tiles}
    val = {t.files.group for t in UAVid(root, "val", options).tiles}
    assert train.isdisjoint(val)
    assert len(val) == 1
    assert train | val == {"seq1", "seq2", "seq3", "seq4"}
    test = UAVid(root, "test")
    assert {t.files.group for t in test.tiles} == {"seq16"}


def test_unlabelled_official_test_frames_are_not_a_problem(pristine: Callable[[str], Path]) -> None:
    found, problems = UAVid.scan(pristine("uavid"))
    unlabelled = [f for f in found if f.label is None]
    assert [f.split for f in unlabelled] == ["unlabelled", "unlabelled"]
    assert all(not p.fatal for p in problems)


def test_frame_without_label_and_unknown_colour(dataset_copy: Callable[[str], Path]) -> None:
    root = dataset_copy("uavid")
    (root / "uavid_train/seq2/Labels/000100.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"seq2/Images/000100\.png: image has no label"):
        UAVid(root)
    Image.fromarray(np.full((UAVID.HEIGHT, UAVID.WIDTH, 3), 7, np.uint8)).save(
        root / "uavid_train/seq2/Labels/000100.png"
    )
    dataset = UAVid(root, split_options=SplitOptions(val_fraction=0))
    with pytest.raises(InvalidLabelError, match=r"holds \(7, 7, 7\)"):
        dataset[PatchWindow(3, 0, 0, 8, 8)]
    ignoring = UAVid(root, split_options=SplitOptions(val_fraction=0), unknown_labels="ignore")
    assert (ignoring[PatchWindow(3, 0, 0, 8, 8)]["mask"] == IGNORE_INDEX).all()


def test_rgba_frame_has_the_wrong_band_count(dataset_copy: Callable[[str], Path]) -> None:
    root = dataset_copy("uavid")
    Image.fromarray(np.zeros((UAVID.HEIGHT, UAVID.WIDTH, 4), np.uint8)).save(
        root / "uavid_train/seq1/Images/000000.png"
    )
    with pytest.raises(InvalidRasterError, match="has 4 bands, expected 3"):
        UAVid(root)


def test_empty_folder_says_how_to_unpack(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="uavid_train/seq1/Images"):
        UAVid(tmp_path)
