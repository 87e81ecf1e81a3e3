"""Segmentation models: encoders, decoders, CMT-UNet presets and baselines, the registry and checkpoints.

>>> from cmt_geo.models import convert_reference_checkpoint, create_model, list_models
>>> model = create_model("cmt_unet_tiny", num_classes=6, in_channels=4)
>>> fast = optimize_for_inference(model)  # eval-only copy: norms folded, for predict
>>> convert_reference_checkpoint("weights.pth", "model.ckpt")  # weights saved by the reference CMT-UNet's training
"""

from cmt_geo.card import ModelCard, NormalizationStats, read_card
from cmt_geo.models.checkpoint import load_checkpoint, save_checkpoint
from cmt_geo.models.encoders import FeatureLevel
from cmt_geo.models.optimize import compile_for_inference, optimize_for_inference
from cmt_geo.models.reference import convert_reference_checkpoint
from cmt_geo.models.registry import create_model, list_models
from cmt_geo.models.segmentation import ModelConfig, RuntimeOptions, SegmentationModel

__all__ = [
    "FeatureLevel",
    "ModelCard",
    "ModelConfig",
    "NormalizationStats",
    "RuntimeOptions",
    "SegmentationModel",
    "compile_for_inference",
    "convert_reference_checkpoint",
    "create_model",
    "list_models",
    "load_checkpoint",
    "optimize_for_inference",
    "read_card",
    "save_checkpoint",
]
