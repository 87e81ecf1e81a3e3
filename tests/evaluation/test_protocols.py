"""Each dataset's protocol: which classes the means average and which labels are scored."""

from __future__ import annotations

import pytest

from cmt_geo.data.registry import DATASET_NAMES, dataset_class
from cmt_geo.errors import ConfigError
from cmt_geo.evaluation.protocols import protocol


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_registered_dataset_has_a_protocol(name: str) -> None:
    assert protocol(name).dataset == name


@pytest.mark.parametrize("name", ["vaihingen", "potsdam"])
def test_isprs_averages_five_classes_without_clutter_on_eroded_labels(name: str) -> None:
    chosen = protocol(name)
    classes = dataset_class(name).classes
    assert chosen.mean_over == (0, 1, 2, 3, 4)
    assert classes[5] == "clutter"
    assert chosen.describe(classes) == (
        "mIoU and mean F1 over 5 of 6 classes (without clutter), OA over all 6, on eroded labels (boundaries ignored)"
    )


@pytest.mark.parametrize(("name", "count"), [("uavid", 8), ("loveda", 7)])
def test_uavid_and_loveda_average_every_class(name: str, count: int) -> None:
    chosen = protocol(name)
    assert chosen.mean_over is None
    assert chosen.describe(dataset_class(name).classes).startswith(f"mIoU and mean F1 over all {count} classes")


def test_raster_averages_every_class() -> None:
    assert protocol("raster").mean_over is None


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="vaihingen, potsdam"):
        protocol("cityscapes")
