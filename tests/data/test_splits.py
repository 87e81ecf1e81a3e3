"""Splits: validation tiles carved from training tiles, deterministic and configurable; test stays apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmt_geo.data.splits import carve_validation, select_split
from cmt_geo.data.tiles import TileFiles
from cmt_geo.errors import ConfigError

NAMES = [f"t{i}" for i in range(10)]


def _files(name: str, split: str, group: str | None = None) -> TileFiles:
    return TileFiles(name, group or name, split, Path(f"{name}.tif"), Path(f"{name}_label.tif"))


def test_carving_is_deterministic_by_seed_and_sized_by_fraction() -> None:
    first = carve_validation(NAMES, 0.2, seed=3, chosen=None)
    assert first == carve_validation(list(reversed(NAMES)), 0.2, seed=3, chosen=None)
    assert len(first) == 2
    assert first <= set(NAMES)
    others = {frozenset(carve_validation(NAMES, 0.2, seed=s, chosen=None)) for s in range(10)}
    assert len(others) > 1


def test_at_least_one_validation_tile_but_never_all() -> None:
    assert len(carve_validation(["a", "b"], 0.01, 0, None)) == 1
    assert len(carve_validation(["a", "b"], 0.99, 0, None)) == 1
    assert carve_validation(["a"], 0.5, 0, None) == set()
    assert carve_validation(NAMES, 0.0, 0, None) == set()


def test_explicit_validation_tiles_must_be_training_tiles() -> None:
    assert carve_validation(NAMES, 0.5, 0, ["t1"]) == {"t1"}
    with pytest.raises(ConfigError, match=r"\['nope'\] are not training tiles"):
        carve_validation(NAMES, 0.5, 0, ["nope"])


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_bad_fraction_is_refused(fraction: float) -> None:
    with pytest.raises(ConfigError, match="outside"):
        carve_validation(NAMES, fraction, 0, None)


def test_train_and_val_partition_training_groups_and_test_is_separate() -> None:
    found = [_files(f"s{i}/f{j}", "train", f"s{i}") for i in range(4) for j in range(3)]
    found += [_files("x", "test")]
    train = select_split(found, "train", 0.25, None, 0)
    val = select_split(found, "val", 0.25, None, 0)
    assert {f.group for f in train}.isdisjoint({f.group for f in val})
    assert len(train) + len(val) == 12
    assert len(val) == 3
    assert [f.name for f in select_split(found, "test", 0.25, None, 0)] == ["x"]
    with pytest.raises(ConfigError, match="'validation' is not a split"):
        select_split(found, "validation", 0.25, None, 0)
