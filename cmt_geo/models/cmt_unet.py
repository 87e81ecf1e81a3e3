"""CMT-UNet and its baselines as one segmentation model: encoder -> decoder -> logits at the input's size."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.padding import pad_to_multiple
from cmt_geo.models.decoders import UNetDecoder, UNetFormerDecoder
from cmt_geo.models.encoders import CNNMambaEncoder, Encoder, FeatureLevel, ResNetEncoder, VMambaEncoder
from cmt_geo.ops.selective_scan import ScanBackend

DecoderKind = Literal["hybrid", "unetformer", "unet"]
INPUT_MULTIPLE = 32
RUNTIME_FIELDS = frozenset({"pretrained_backbone", "scan_backend", "gradient_checkpointing", "fused_attention"})
"""`ModelConfig` fields that change how a model is initialized or computed, not which weights it has."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture settings of a segmentation model (a preset fills them in; every field can be overridden).

    Attributes:
        backbone: timm ResNet of the CNN branch.
        pretrained_backbone: load ImageNet weights for it from the timm hub (needs internet).
        mamba: add the VMamba branch and fuse it after every ResNet stage (CMT-UNet); False: ResNet alone.
        mamba_dims: VMamba channels per stage.
        mamba_depths: VSS blocks per stage.
        mamba_stem_channels: channels of the VMamba stride-2 stem.
        d_state: SSM state size.
        ssm_expand: SS2D inner expansion.
        drop_path_rate: stochastic depth of the VMamba branch.
        fusion_heads: attention heads of the fusion blocks.
        decoder: "hybrid" (CMT-UNet), "unetformer" (plain GLA, plain projections) or "unet".
        decode_channels: decoder width of the UNetFormer decoders.
        decoder_heads: attention heads of the UNetFormer decoders.
        unet_channels: stage widths of the U-Net decoder.
        window_size: attention window (fusion and decoder).
        mlp_ratio: MLP width of the fusion blocks.
        wavelet: PyWavelets name of the wavelet projections.
        dropout: dropout before the classifier.
        use_msaa: multi-scale attention aggregation on the skips (ablation switch).
        use_rcm: rectangular self-calibration modules in the decoder (ablation switch).
        scan_backend: selective-scan backend for SS2D ("auto" picks the fastest available).
        gradient_checkpointing: recompute activations in backward to save memory in training.
        fused_attention: scaled_dot_product_attention instead of explicit attention math.
    """

    backbone: str = "resnet50"
    pretrained_backbone: bool = False
    mamba: bool = True
    mamba_dims: tuple[int, ...] = (96, 192, 384, 768)
    mamba_depths: tuple[int, ...] = (2, 2, 9, 2)
    mamba_stem_channels: int = 48
    d_state: int = 16
    ssm_expand: float = 2.0
    drop_path_rate: float = 0.1
    fusion_heads: int = 16
    decoder: DecoderKind = "hybrid"
    decode_channels: int = 64
    decoder_heads: int = 8
    unet_channels: tuple[int, ...] = (256, 128, 64)
    window_size: int = 8
    mlp_ratio: float = 4.0
    wavelet: str = "db1"
    dropout: float = 0.1
    use_msaa: bool = False
    use_rcm: bool = False
    scan_backend: str = "auto"
    gradient_checkpointing: bool = False
    fused_attention: bool = True

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):  # JSON / YAML give lists where the config holds tuples
                value = tuple(value)
            elif isinstance(field.default, float) and _is_integer(value):
                value = float(value)
            if not _has_type_of(value, field.default):
                raise ConfigError(
                    f"model option {field.name} must be {_type_name(field.default)}, got {value!r}; "
                    f"the default is {field.default!r}"
                )
            object.__setattr__(self, field.name, value)
        if self.decoder not in get_args(DecoderKind):
            raise ConfigError(f"decoder must be one of {get_args(DecoderKind)}, got {self.decoder!r}")
        if self.scan_backend not in get_args(ScanBackend):
            raise ConfigError(f"scan_backend must be one of {get_args(ScanBackend)}, got {self.scan_backend!r}")

    @classmethod
    def with_overrides(cls, base: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
        """`base` with some fields replaced; an unknown field is a ConfigError that lists the valid ones."""
        valid = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ConfigError(f"unknown model option(s) {unknown}; valid options: {sorted(valid)}")
        return dataclasses.replace(base, **overrides)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_type_of(value: object, default: object) -> bool:
    """Whether `value` has the type of a field's default (bool is not an int; tuples hold integers)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, tuple):
        return isinstance(value, tuple) and all(_is_integer(item) for item in value)
    return _is_integer(value) if isinstance(default, int) else isinstance(value, type(default))


def _type_name(default: object) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(type(default), "a tuple of integers")


class SegmentationModel(nn.Module):
    """encoder -> decoder -> bilinear upsampling; any input size (padded to a multiple of 32, then cropped back).

    Runs channels-last inside (`build_model` converts the weights; inputs are converted in `forward`).

    Args:
        encoder: maps (B, C_in, H, W) to four features described by its `feature_info`.
        decoder: maps those features to logits at stride 4.
        in_channels: input bands.
        num_classes: output classes.
    """

    def __init__(self, encoder: Encoder, decoder: nn.Module, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.in_channels, self.num_classes = in_channels, num_classes
        self.feature_info: tuple[FeatureLevel, ...] = encoder.feature_info
        self.architecture = "custom"  # the registry name, set by `create_model`
        self.config: ModelConfig | None = None  # set by `build_model`

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Switch activation checkpointing of every encoder stage, block and decoder block."""
        for module in self.modules():
            if isinstance(module, Encoder | UNetFormerDecoder | UNetDecoder):
                module.gradient_checkpointing = enabled

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> logits (B, num_classes, H, W), for any H, W >= 1."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}; "
                f"the model was built for {self.in_channels} band(s)"
            )
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, INPUT_MULTIPLE).contiguous(memory_format=torch.channels_last)
        logits = self.decoder(self.encoder(padded))
        logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :height, :width]


def build_model(config: ModelConfig, num_classes: int, in_channels: int = 3) -> SegmentationModel:
    """Assemble encoder and decoder from a config."""
    if num_classes < 1 or in_channels < 1:
        raise ConfigError(f"num_classes and in_channels must be at least 1, got {num_classes} and {in_channels}")
    resnet = ResNetEncoder(config.backbone, in_channels, config.pretrained_backbone)
    encoder: Encoder = resnet
    if config.mamba:
        mamba = VMambaEncoder(
            in_channels,
            config.mamba_dims,
            config.mamba_depths,
            config.mamba_stem_channels,
            config.d_state,
            config.ssm_expand,
            config.drop_path_rate,
            config.scan_backend,
        )
        encoder = CNNMambaEncoder(
            resnet,
            mamba,
            config.fusion_heads,
            config.window_size,
            config.mlp_ratio,
            config.wavelet,
            config.fused_attention,
        )
    decoder: nn.Module
    if config.decoder == "unet":
        decoder = UNetDecoder(encoder.feature_info, num_classes, config.unet_channels)
    else:
        decoder = UNetFormerDecoder(
            encoder.feature_info,
            num_classes,
            config.decode_channels,
            config.decoder_heads,
            config.window_size,
            hybrid=config.decoder == "hybrid",
            wavelet_projection=config.decoder == "hybrid",
            wavelet=config.wavelet,
            use_msaa=config.use_msaa,
            use_rcm=config.use_rcm,
            dropout=config.dropout,
            fused_attention=config.fused_attention,
        )
    model = SegmentationModel(encoder, decoder, in_channels, num_classes)
    model.config = config
    model.set_gradient_checkpointing(config.gradient_checkpointing)
    return model.to(memory_format=torch.channels_last)  # NHWC: faster convs on CPU (oneDNN) and GPU (tensor cores)
