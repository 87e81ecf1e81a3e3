"""Splits: the official train / test partition, and a validation split carved from training data by tile."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from cmt_geo.data.tiles import TileFiles
from cmt_geo.errors import ConfigError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


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


def select_split(
    found: Sequence[TileFiles],
    split: str,
    val_fraction: float,
    val_tiles: Sequence[str] | None,
    seed: int,
    test_source: str = "test",
) -> list[TileFiles]:
    """The tiles of one split.

    "train" and "val" partition the official training tiles by group; "test" is the official `test_source` split,
    meant for evaluation only.

    Raises:
        ConfigError: an unknown split, or bad validation options.
    """
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not a split; use one of {', '.join(SPLITS)}")
    if split == "test":
        return [files for files in found if files.split == test_source]
    training = [files for files in found if files.split == "train"]
    validation = carve_validation([files.group for files in training], val_fraction, seed, val_tiles)
    return [files for files in training if (files.group in validation) == (split == "val")]
