"""Datasets, samplers, augmentation and synthetic scenes for training on aerial, UAV and satellite rasters.

Names are imported on first use, so `import cmt_geo.data.labels` (or the registry) does not load TorchGeo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmt_geo._lazy import lazy_exports

if TYPE_CHECKING:
    from cmt_geo.card import NormalizationStats
    from cmt_geo.data.augment import AugmentConfig, GpuAugmentation, dataset_normalization, estimate_normalization
    from cmt_geo.data.base import PatchWindow, SplitOptions, TiledSegmentationDataset
    from cmt_geo.data.check import CheckOptions, CheckReport, check_dataset
    from cmt_geo.data.isprs import Potsdam, Vaihingen
    from cmt_geo.data.labels import IGNORE_INDEX, LabelCoding
    from cmt_geo.data.loveda import LoveDA
    from cmt_geo.data.raster import RasterSegmentation
    from cmt_geo.data.registry import DATASET_NAMES, dataset_class
    from cmt_geo.data.samplers import GridPatchSampler, RandomPatchSampler
    from cmt_geo.data.synthetic import make_scene, write_raster_pair, write_synthetic
    from cmt_geo.data.uavid import UAVid

_SOURCES = {
    "cmt_geo.card": ("NormalizationStats",),
    "cmt_geo.data.augment": ("AugmentConfig", "GpuAugmentation", "dataset_normalization", "estimate_normalization"),
    "cmt_geo.data.base": ("PatchWindow", "SplitOptions", "TiledSegmentationDataset"),
    "cmt_geo.data.check": ("CheckOptions", "CheckReport", "check_dataset"),
    "cmt_geo.data.isprs": ("Potsdam", "Vaihingen"),
    "cmt_geo.data.labels": ("IGNORE_INDEX", "LabelCoding"),
    "cmt_geo.data.loveda": ("LoveDA",),
    "cmt_geo.data.raster": ("RasterSegmentation",),
    "cmt_geo.data.registry": ("DATASET_NAMES", "dataset_class"),
    "cmt_geo.data.samplers": ("GridPatchSampler", "RandomPatchSampler"),
    "cmt_geo.data.synthetic": ("make_scene", "write_raster_pair", "write_synthetic"),
    "cmt_geo.data.uavid": ("UAVid",),
}

__all__ = [
    "DATASET_NAMES",
    "IGNORE_INDEX",
    "AugmentConfig",
    "CheckOptions",
    "CheckReport",
    "GpuAugmentation",
    "GridPatchSampler",
    "LabelCoding",
    "LoveDA",
    "NormalizationStats",
    "PatchWindow",
    "Potsdam",
    "RandomPatchSampler",
    "RasterSegmentation",
    "SplitOptions",
    "TiledSegmentationDataset",
    "UAVid",
    "Vaihingen",
    "check_dataset",
    "dataset_class",
    "dataset_normalization",
    "estimate_normalization",
    "make_scene",
    "write_raster_pair",
    "write_synthetic",
]


__getattr__, __dir__ = lazy_exports("cmt_geo.data", _SOURCES, globals())
