"""The dataset registry: every name once, each with its class, loaded only when asked for."""

from __future__ import annotations

import pytest

from cmt_geo.data.base import TiledSegmentationDataset
from cmt_geo.data.registry import _CLASSES, DATASET_NAMES, dataset_class
from cmt_geo.errors import ConfigError


def test_every_name_has_a_dataset_class_whose_name_it_is() -> None:
    assert set(_CLASSES) == set(DATASET_NAMES)
    for name in DATASET_NAMES:
        kind = dataset_class(name)
        assert issubclass(kind, TiledSegmentationDataset)
        assert kind.name == name


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match="unknown dataset 'coco'; use one of vaihingen, potsdam, uavid, loveda, raster"
    ):
        dataset_class("coco")
