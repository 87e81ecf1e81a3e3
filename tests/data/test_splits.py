"""Splits: validation tiles carved from training tiles, deterministic and configurable; test stays apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmt_geo.data.splits import carve_validation, carving_warning, describe_splits, select_split, split_tiles
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


def test_every_split_is_described_and_long_lists_are_cut() -> None:
    found = [_files(name, "train") for name in NAMES] + [_files(f"x{i}", "test") for i in range(12)]
    splits = split_tiles(found, 0.1, None, 0)
    (val,) = [f.name for f in splits["val"]]
    train = [name for name in NAMES if name != val]
    assert describe_splits(splits) == (
        f"train: 9 tiles ({', '.join(train)}); val: 1 tile ({val}); "
        "test: 12 tiles (x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, … (2 more))"
    )
    assert describe_splits(split_tiles(found[:1], 0.1, None, 0)) == "train: 1 tile (t0); val: 0; test: 0"


def test_carving_warns_about_an_empty_split_or_one_of_two_tiles() -> None:
    two = [_files("a", "train"), _files("b", "train")]
    assert carving_warning(split_tiles(two, 0.1, ["b"], 0)) == (
        "validation took 'b', one of only two training tiles, so train uses 'a' alone; pass "
        "split_options=SplitOptions(val_fraction=0) to train on both, or choose with val_tiles=[...]"
    )
    assert carving_warning(split_tiles(two, 0.1, ["a", "b"], 0)) == (
        "validation took every training tile (a, b), so train is empty; choose fewer val_tiles"
    )
    assert carving_warning(split_tiles(two[:1], 0.1, None, 0)) == (
        "validation is empty: there is only one training tile (a); add tiles or choose val_tiles"
    )
    sequences = [_files(f"s{i}/f{j}", "train", f"s{i}") for i in range(3) for j in range(2)]
    assert carving_warning(split_tiles(sequences, 0.1, None, 0)) is None
