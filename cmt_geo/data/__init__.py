"""Datasets, samplers, augmentation and synthetic scenes for training on aerial, UAV and satellite rasters."""

from cmt_geo.data.augment import (
    AugmentConfig,
    GpuAugmentation,
    NormalizationStats,
    dataset_normalization,
    estimate_normalization,
)
from cmt_geo.data.base import PatchWindow, SplitOptions, TiledSegmentationDataset
from cmt_geo.data.check import CheckReport, check_dataset
from cmt_geo.data.isprs import Potsdam, Vaihingen
from cmt_geo.data.labels import IGNORE_INDEX, LabelCoding
from cmt_geo.data.loveda import LoveDA
from cmt_geo.data.raster import RasterSegmentation
from cmt_geo.data.samplers import GridPatchSampler, RandomPatchSampler
from cmt_geo.data.synthetic import make_scene, write_raster_pair, write_synthetic
from cmt_geo.data.uavid import UAVid

#: Dataset classes by the name the command line and configs use.
DATASETS: dict[str, type[TiledSegmentationDataset]] = {
    "vaihingen": Vaihingen,
    "potsdam": Potsdam,
    "uavid": UAVid,
    "loveda": LoveDA,
    "raster": RasterSegmentation,
}

__all__ = [
    "DATASETS",
    "IGNORE_INDEX",
    "AugmentConfig",
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
    "dataset_normalization",
    "estimate_normalization",
    "make_scene",
    "write_raster_pair",
    "write_synthetic",
]
