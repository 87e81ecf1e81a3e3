"""The model registry: presets by name, `create_model` and `list_models`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from cmt_geo.errors import ConfigError
from cmt_geo.models.segmentation import (
    ARCHITECTURE_OPTIONS,
    RUNTIME_OPTIONS,
    ModelConfig,
    RuntimeOptions,
    SegmentationModel,
    build_model,
)
from cmt_geo.validation import reject_unknown

_PRESETS: dict[str, Callable[[], ModelConfig]] = {}


def register_preset(preset: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Register a function returning a ModelConfig under its own name."""
    _PRESETS[preset.__name__] = preset
    return preset


@register_preset
def cmt_unet_base() -> ModelConfig:
    """CMT-UNet as the reference: ResNet-50 + VMamba (96-768, depths 2/2/9/2), fusion blocks, hybrid decoder."""
    return ModelConfig()


@register_preset
def cmt_unet_small() -> ModelConfig:
    """CMT-UNet with a ResNet-18 CNN branch."""
    return ModelConfig(backbone="resnet18")


@register_preset
def cmt_unet_tiny() -> ModelConfig:
    """CMT-UNet sized for CPU inference: ResNet-18, a half-width shallow VMamba branch, 8-head fusion blocks."""
    return ModelConfig(
        backbone="resnet18",
        mamba_dims=(48, 96, 192, 384),
        mamba_depths=(1, 1, 2, 1),
        mamba_stem_channels=24,
        fusion_heads=8,
        mlp_ratio=2.0,
    )


@register_preset
def unetformer() -> ModelConfig:
    """Baseline UNetFormer: ResNet-18, global-local attention decoder with plain projections."""
    return ModelConfig(backbone="resnet18", mamba=False, decoder="unetformer")


@register_preset
def unet() -> ModelConfig:
    """Baseline U-Net: ResNet-18 encoder, plain U-Net decoder."""
    return ModelConfig(backbone="resnet18", mamba=False, decoder="unet")


def list_models() -> list[str]:
    """Names of the registered presets, sorted."""
    return sorted(_PRESETS)


def preset_config(name: str) -> ModelConfig:
    """The ModelConfig of a preset; an unknown name is a ConfigError listing the valid ones."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown model {name!r}; choose one of {list_models()}")
    return _PRESETS[name]()


def create_model(name: str, num_classes: int, in_channels: int = 3, **options: Any) -> SegmentationModel:
    """Build a registered model.

    Args:
        name: preset name (see `list_models()`), e.g. "cmt_unet_base".
        num_classes: output classes.
        in_channels: input bands.
        **options: `ModelConfig` fields to change (e.g. use_msaa=True) and `RuntimeOptions` (e.g.
            scan_backend="torch", pretrained_backbone=True).

    Returns:
        The model (randomly initialized unless pretrained_backbone=True), with `architecture` and `config` set.

    Raises:
        ConfigError: an unknown name or option (the message lists the valid ones), or an invalid value.
    """
    reject_unknown("model option(s)", options, ARCHITECTURE_OPTIONS | RUNTIME_OPTIONS)
    runtime = RuntimeOptions(**{key: value for key, value in options.items() if key in RUNTIME_OPTIONS})
    architecture = {key: value for key, value in options.items() if key in ARCHITECTURE_OPTIONS}
    config = dataclasses.replace(preset_config(name), **architecture)
    return build_model(config, num_classes, in_channels, runtime=runtime, architecture=name)
