"""The datasets cmt-geo knows, by the name the command line, configs and `check_dataset` use (imports nothing heavy).

Each name maps to its dataset class, imported only when asked for, so the command line can validate a name or a
path before TorchGeo loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Literal, get_args

from cmt_geo.errors import ConfigError

if TYPE_CHECKING:
    from cmt_geo.data.base import TiledSegmentationDataset

DatasetName = Literal["vaihingen", "potsdam", "uavid", "loveda", "raster"]

#: Every dataset name, in the order help texts list them.
DATASET_NAMES: tuple[str, ...] = get_args(DatasetName)
#: Dataset class of each name, as "module:class".
_CLASSES: dict[DatasetName, str] = {
    "vaihingen": "cmt_geo.data.isprs:Vaihingen",
    "potsdam": "cmt_geo.data.isprs:Potsdam",
    "uavid": "cmt_geo.data.uavid:UAVid",
    "loveda": "cmt_geo.data.loveda:LoveDA",
    "raster": "cmt_geo.data.raster:RasterSegmentation",
}


def dataset_class(name: str) -> type[TiledSegmentationDataset]:
    """The dataset class registered as `name`.

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    if name not in _CLASSES:
        raise ConfigError(f"unknown dataset {name!r}; use one of {', '.join(DATASET_NAMES)}")
    module, _, attribute = _CLASSES[name].partition(":")
    kind: type[TiledSegmentationDataset] = getattr(importlib.import_module(module), attribute)
    return kind
