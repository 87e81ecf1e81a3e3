"""Segmentation models: encoders, decoders, CMT-UNet presets and baselines, the registry and checkpoints.

>>> from cmt_geo.models import create_model, list_models
>>> model = create_model("cmt_unet_tiny", num_classes=6, in_channels=4)
"""

from cmt_geo.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from cmt_geo.models.cmt_unet import ModelConfig, SegmentationModel
from cmt_geo.models.encoders import FeatureLevel
from cmt_geo.models.registry import create_model, list_models

__all__ = [
    "FeatureLevel",
    "ModelCard",
    "ModelConfig",
    "SegmentationModel",
    "create_model",
    "list_models",
    "load_checkpoint",
    "save_checkpoint",
]
