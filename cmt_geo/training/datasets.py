"""Datasets from a config's data section: the splits, the validation carving, and the statistics training needs.

`build_dataset(config.data, split)` is the one way a config becomes a dataset (training and evaluation both use it):
"test" is the dataset's official test split; "train" and "val" are carved from its training data, by whole tiles
or, when there is a single training tile (or `val_split: blocks`), by spatial blocks inside the tiles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cmt_geo.card import IGNORE_INDEX, NormalizationStats
from cmt_geo.data.augment import estimate_normalization
from cmt_geo.data.base import PatchWindow, SplitOptions, TiledSegmentationDataset
from cmt_geo.data.registry import dataset_class
from cmt_geo.data.samplers import GridPatchSampler
from cmt_geo.data.splits import SpatialBlocks, Split, carve_blocks, check_split
from cmt_geo.errors import ConfigError
from cmt_geo.training.config import DATASET_KEYS, DataSection

logger = logging.getLogger(__name__)

#: Constructor argument of each data key whose name differs (ISPRS `bands` and `labels` mean other things than
#: the raster dataset's).
_ARGUMENT = {"band_order": "bands", "label_kind": "labels"}


@dataclass(frozen=True)
class SplitData:
    """A split's dataset, and the validation blocks it was carved with (None when carved by tile or not carved)."""

    dataset: TiledSegmentationDataset
    blocks: SpatialBlocks | None = None


def _construct(config: DataSection, split: Split, options: SplitOptions) -> TiledSegmentationDataset:
    kind: Any = dataset_class(config.dataset)  # the constructors differ past the common arguments
    specific = {_ARGUMENT.get(key, key): getattr(config, key) for key in DATASET_KEYS[config.dataset]}
    dataset: TiledSegmentationDataset = kind(
        config.root,
        split=split,
        split_options=options,
        unknown_labels=config.unknown_labels,
        compact=True,
        **specific,
    )
    return dataset


def has_validation(config: DataSection) -> bool:
    """Whether the data section carves a validation split."""
    return config.val_fraction > 0 or bool(config.val_tiles)


def load_split(config: DataSection, split: Split) -> SplitData:
    """A split of the dataset a data section names (compact samples: stored dtype, uint8 masks).

    Raises:
        DatasetNotFoundError: the dataset folder, its files or the split's tiles are missing.
        ConfigError: an unknown split, "val" without validation (val_fraction 0), or bad carving options.
    """
    check_split(split)
    config.check_exists()
    if split == "test":
        return SplitData(_construct(config, "test", SplitOptions(val_fraction=0, seed=config.split_seed)))
    if not has_validation(config):
        if split == "val":
            raise ConfigError(
                "there is no validation split: data.val_fraction is 0; set it (--set data.val_fraction=0.2)"
            )
        return SplitData(_construct(config, "train", SplitOptions(val_fraction=0, seed=config.split_seed)))
    if config.val_split != "tiles" and config.val_tiles is None:
        whole = _construct(config, "train", SplitOptions(val_fraction=0, seed=config.split_seed))
        if config.val_split == "blocks" or len({tile.files.group for tile in whole.tiles}) == 1:
            blocks = carve_blocks(
                whole.tiles, config.val_block_size, config.val_fraction, config.val_gap, config.split_seed
            )
            whole.transforms = blocks.mask(split)
            return SplitData(whole, blocks)
    options = SplitOptions(config.val_fraction, config.val_tiles, config.split_seed)
    return SplitData(_construct(config, split, options))


def build_dataset(config: DataSection, split: Split) -> TiledSegmentationDataset:
    """The `split` of the dataset a config's data section names, as training reads it (compact samples).

    With validation carved by blocks, "val" and "train" are the same tiles whose labels outside (or inside) the
    validation blocks read as `IGNORE_INDEX`, so whole-tile evaluation scores exactly the split's pixels.

    Raises:
        DatasetNotFoundError: the dataset folder, its files or the split's tiles are missing.
        ConfigError: an unknown split, "val" without validation, or bad carving options.
    """
    return load_split(config, split).dataset


def describe_training_data(
    dataset: TiledSegmentationDataset, patch_size: int, samples: int
) -> tuple[NormalizationStats, npt.NDArray[np.int64]]:
    """Band means and stds, and pixels per class, from up to `samples` grid patches spread over the training split
    (over its labelled pixels: validation blocks count only in patches without any training label).

    Returns:
        The normalization statistics (over labelled pixels) and the (K,) labelled pixel count of each class.
    """
    windows = list(GridPatchSampler(dataset, patch_size, rank=0, world_size=1))
    spread = windows[:: max(1, len(windows) // samples)][:samples]
    counts = np.zeros(dataset.num_classes, dtype=np.int64)

    def counting(windows: list[PatchWindow]) -> Iterator[dict[str, Any]]:
        for window in windows:
            sample = dataset[window]
            mask = sample["mask"].numpy().astype(np.int64).ravel()
            counts[:] += np.bincount(mask[mask != IGNORE_INDEX], minlength=len(counts))[: len(counts)]
            yield sample

    stats = estimate_normalization(counting(spread), dataset.band_names, samples)
    return stats, counts


def ground_sample_distance(config: DataSection, dataset: TiledSegmentationDataset) -> float | None:
    """The pixel size in metres: the config's, else the dataset's when its CRS is projected, else None."""
    if config.ground_sample_distance is not None:
        return config.ground_sample_distance
    from rasterio.crs import CRS

    if dataset.crs is None:
        return None
    crs = CRS.from_user_input(dataset.crs)
    if not crs.is_projected:
        return None
    return float(dataset.res[0]) * float(crs.linear_units_factor[1])
