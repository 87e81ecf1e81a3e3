"""Splits: the official train / test partition, and a validation split carved from training data by tile."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Literal

from cmt_geo.data.tiles import TileFiles
from cmt_geo.errors import ConfigError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


def check_split(split: str) -> str:
    """`split` itself, when it is one of `SPLITS`.

    Raises:
        ConfigError: an unknown split.
    """
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not a split; use one of {', '.join(SPLITS)}")
    return split


def carve_validation(groups: Sequence[str], fraction: float, seed: int, chosen: Sequence[str] | None) -> set[str]:
    """The groups (tiles or sequences) moved from training to validation.

    Args:
        groups: the training groups present.
        fraction: share of groups to carve when `chosen` is None; at least one group is carved when there are two
            or more and the fraction is above 0.
        seed: seeds the choice, so the same folder always gives the same split.
        chosen: explicit validation groups; each must be a training group.

    Raises:
        ConfigError: the fraction is outside [0, 1) or a chosen group is not a training group.
    """
    present = sorted(set(groups))
    if chosen is not None:
        unknown = sorted(set(chosen) - set(present))
        if unknown:
            raise ConfigError(
                f"validation tiles {unknown} are not training tiles here; choose among {present[:20]}"
                + (" …" if len(present) > 20 else "")
            )
        return set(chosen)
    if not 0 <= fraction < 1:
        raise ConfigError(f"val_fraction={fraction!r} is outside [0, 1); use e.g. 0.1")
    if fraction == 0 or len(present) < 2:
        return set()
    count = min(max(1, round(fraction * len(present))), len(present) - 1)
    return set(random.Random(seed).sample(present, count))


def split_tiles(
    found: Sequence[TileFiles],
    val_fraction: float,
    val_tiles: Sequence[str] | None,
    seed: int,
    test_source: str = "test",
) -> dict[str, list[TileFiles]]:
    """The tiles of every split.

    "train" and "val" partition the official training tiles by group (see `carve_validation`); "test" is the
    official `test_source` split, meant for evaluation only.

    Raises:
        ConfigError: bad validation options.
    """
    training = [files for files in found if files.split == "train"]
    validation = carve_validation([files.group for files in training], val_fraction, seed, val_tiles)
    return {
        "train": [files for files in training if files.group not in validation],
        "val": [files for files in training if files.group in validation],
        "test": [files for files in found if files.split == test_source],
    }


def select_split(
    found: Sequence[TileFiles],
    split: str,
    val_fraction: float,
    val_tiles: Sequence[str] | None,
    seed: int,
    test_source: str = "test",
) -> list[TileFiles]:
    """The tiles of one split (see `split_tiles`).

    Raises:
        ConfigError: an unknown split, or bad validation options.
    """
    return split_tiles(found, val_fraction, val_tiles, seed, test_source)[check_split(split)]


def carving_warning(splits: Mapping[str, Sequence[TileFiles]]) -> str | None:
    """What is wrong with a validation split carved from training tiles, if anything: train or val is empty, or
    validation took one of only two training groups."""
    train = sorted({files.group for files in splits["train"]})
    val = sorted({files.group for files in splits["val"]})
    if val and not train:
        return f"validation took every training tile ({_names(val)}), so train is empty; choose fewer val_tiles"
    if len(train) == 1 and not val:
        return f"validation is empty: there is only one training tile ({train[0]}); add tiles or choose val_tiles"
    if len(train) == 1 and len(val) == 1:
        return (
            f"validation took {val[0]!r}, one of only two training tiles, so train uses {train[0]!r} alone; pass "
            "split_options=SplitOptions(val_fraction=0) to train on both, or choose with val_tiles=[...]"
        )
    return None


def describe_splits(splits: Mapping[str, Sequence[TileFiles]]) -> str:
    """One line saying which tiles went to which split, e.g. "train: 3 tiles (a, b, c); val: 1 tile (d); test: 0"."""
    parts = []
    for split, tiles in splits.items():
        count = f"{len(tiles)} tile{'' if len(tiles) == 1 else 's'}"
        parts.append(f"{split}: {count} ({_names([files.name for files in tiles])})" if tiles else f"{split}: 0")
    return "; ".join(parts)


def _names(names: Sequence[str], most: int = 10) -> str:
    """The first `most` names, comma-separated, saying how many more there are."""
    return ", ".join(names[:most]) + (f", … ({len(names) - most} more)" if len(names) > most else "")
