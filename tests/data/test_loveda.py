"""LoveDA read from a fixture in its real layout: value labels with 0 = no data, scenes, splits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cmt_geo.data import IGNORE_INDEX, LoveDA, PatchWindow, SplitOptions
from cmt_geo.errors import ConfigError, DatasetNotFoundError

from .conftest import fixture_script

LOVEDA = fixture_script("loveda")
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_values_decode_and_zero_is_ignored(pristine: Callable[[str], Path]) -> None:
    root = pristine("loveda")
    dataset = LoveDA(root, split_options=SplitOptions(val_fraction=0))
    for tile in range(len(dataset.tiles)):
        mask = dataset[PatchWindow(tile, 0, 0, LOVEDA.SIZE, LOVEDA.SIZE)]["mask"]
        raw = torch.from_numpy(np.asarray(Image.open(dataset.tiles[tile].files.label)).astype(np.int64))
        assert torch.equal(mask[raw == 0], torch.full_like(mask[raw == 0], IGNORE_INDEX))
        assert torch.equal(mask[raw > 0], raw[raw > 0] - 1)
        assert set(raw.unique().tolist()) == set(range(8))


@pytest.mark.parametrize(("scene", "count"), [("urban", 2), ("rural", 3), ("both", 5)])
def test_scenes(pristine: Callable[[str], Path], scene: str, count: int) -> None:
    dataset = LoveDA(pristine("loveda"), scene=scene, split_options=SplitOptions(val_fraction=0))  # type: ignore[arg-type]
    assert len(dataset.tiles) == count


def test_splits_and_unknown_scene(pristine: Callable[[str], Path]) -> None:
    root = pristine("loveda")
    train = {t.files.name for t in LoveDA(root, "train").tiles}
    val = {t.files.name for t in LoveDA(root, "val").tiles}
    assert train.isdisjoint(val)
    assert len(train | val) == 5
    assert val
    assert {t.files.name for t in LoveDA(root, "test").tiles} == {"Urban/3514", "Rural/2522"}
    with pytest.raises(ConfigError, match="'city' is not a LoveDA scene"):
        LoveDA(root, scene="city")  # type: ignore[arg-type]


def test_mask_without_image(dataset_copy: Callable[[str], Path]) -> None:
    root = dataset_copy("loveda")
    (root / "Train/Rural/images_png/1.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"masks_png/1\.png: label has no image"):
        LoveDA(root)
