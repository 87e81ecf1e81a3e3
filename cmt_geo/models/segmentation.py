"""The segmentation model of every architecture (CMT-UNet and baselines): its config, runtime options, assembly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.padding import pad_to_multiple
from cmt_geo.models.decoders import UNetDecoder, UNetFormerDecoder
from cmt_geo.models.encoders import CNNMambaEncoder, Encoder, FeatureLevel, ResNetEncoder, VMambaEncoder
from cmt_geo.ops.selective_scan import ScanBackend
from cmt_geo.validation import is_integer, validate_fields

DecoderKind = Literal["hybrid", "unetformer", "unet"]
INPUT_MULTIPLE = 32


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a segmentation model: which weights it has (a preset fills it in; every field can be overridden).

    Attributes:
        backbone: timm ResNet of the CNN branch.
        mamba: add the VMamba branch and fuse it after every ResNet stage (CMT-UNet); False: ResNet alone.
        mamba_dims: VMamba channels per stage.
        mamba_depths: VSS blocks per stage.
        mamba_stem_channels: channels of the VMamba stride-2 stem.
        d_state: SSM state size.
        ssm_expand: SS2D inner expansion.
        drop_path_rate: stochastic depth of the VMamba branch, rising linearly to this value (0.2 in the reference).
        fusion_heads: attention heads of the fusion blocks.
        decoder: "hybrid" (CMT-UNet: GLA + ECA attention, wavelet convolutions), "unetformer" (plain GLA, plain
            convolutions) or "unet".
        decode_channels: decoder width of the UNetFormer decoders.
        decoder_heads: attention heads of the UNetFormer decoders.
        unet_channels: stage widths of the U-Net decoder.
        window_size: attention window (fusion and decoder).
        mlp_ratio: MLP width of the fusion blocks.
        wavelet: PyWavelets name of the wavelet projections.
        dropout: dropout before the classifier.
        use_msaa: multi-scale attention aggregation on the skips (ablation switch).
        use_rcm: rectangular self-calibration modules in the decoder (ablation switch).

    Raises:
        ConfigError: a value of the wrong type (lists are accepted for tuples, integers for numbers).
    """

    backbone: str = "resnet50"
    mamba: bool = True
    mamba_dims: tuple[int, ...] = (96, 192, 384, 768)
    mamba_depths: tuple[int, ...] = (2, 2, 9, 2)
    mamba_stem_channels: int = 48
    d_state: int = 16
    ssm_expand: float = 2.0
    drop_path_rate: float = 0.2
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

    def __post_init__(self) -> None:
        validate_fields(self, "model option")


@dataclass(frozen=True)
class RuntimeOptions:
    """How a model is initialized and computed, not which weights it has; chosen anew whenever a model is built.

    Attributes:
        scan_backend: selective-scan backend for SS2D ("auto" picks the fastest available).
        gradient_checkpointing: recompute activations in backward to save memory in training.
        fused_attention: scaled_dot_product_attention instead of explicit attention math.
        pretrained_backbone: load ImageNet weights for the ResNet from the timm hub (needs internet or
            HF_HUB_OFFLINE=1 with weights timm cached before).

    Raises:
        ConfigError: a value of the wrong type, or a scan_backend that does not exist.
    """

    scan_backend: ScanBackend = "auto"
    gradient_checkpointing: bool = False
    fused_attention: bool = True
    pretrained_backbone: bool = False

    def __post_init__(self) -> None:
        validate_fields(self, "model option")


ARCHITECTURE_OPTIONS = frozenset(field.name for field in dataclasses.fields(ModelConfig))
RUNTIME_OPTIONS = frozenset(field.name for field in dataclasses.fields(RuntimeOptions))


class SegmentationModel(nn.Module):
    """encoder -> decoder -> bilinear upsampling; any input size (padded to a multiple of 32, then cropped back).

    Runs channels-last inside (`build_model` converts the weights; inputs are converted in `forward`).

    Args:
        encoder: maps (B, C_in, H, W) to four features described by its `feature_info`.
        decoder: maps those features to logits at stride 4.
        in_channels: input bands.
        num_classes: output classes.
    """

    def __init__(self, encoder: Encoder, decoder: nn.Module, *, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.in_channels, self.num_classes = in_channels, num_classes
        self.feature_info: tuple[FeatureLevel, ...] = encoder.feature_info
        self.architecture = "custom"  # the registry name, set by `build_model`
        self.config: ModelConfig | None = None  # set by `build_model`

    def architecture_args(self) -> dict[str, Any]:
        """The `ModelConfig` the model was built with, as the options `ModelCard.for_model` records.

        Raises:
            ConfigError: the model was not made by `create_model` (a custom model has no registry name).
        """
        if self.config is None or self.architecture == "custom":
            raise ConfigError(
                "only models made by cmt_geo.models.create_model can be described by a ModelCard; "
                "build the model with create_model(name, num_classes=..., in_channels=...)"
            )
        return dataclasses.asdict(self.config)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Switch activation checkpointing of every encoder stage, block and decoder block."""
        for module in self.modules():
            if isinstance(module, Encoder | UNetFormerDecoder | UNetDecoder):
                module.gradient_checkpointing = enabled

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) float -> logits (B, num_classes, H, W), for any H, W >= 1."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}; "
                f"the model was built for {self.in_channels} band(s)"
            )
        if not x.is_floating_point():
            raise ConfigError(
                f"expected a floating-point input, got {x.dtype}; convert it to float and normalize it, e.g. "
                "card.normalization.normalize(x) with the model's NormalizationStats"
            )
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, INPUT_MULTIPLE).contiguous(memory_format=torch.channels_last)
        logits = self.decoder(self.encoder(padded))
        logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :height, :width]


def build_model(
    config: ModelConfig,
    num_classes: int,
    in_channels: int = 3,
    *,
    runtime: RuntimeOptions | None = None,
    architecture: str = "custom",
) -> SegmentationModel:
    """Assemble encoder and decoder from a config.

    Args:
        config: the architecture.
        num_classes: output classes (an integer >= 1).
        in_channels: input bands (an integer >= 1).
        runtime: how the model computes; None: the defaults.
        architecture: registry name recorded on the model (`create_model` passes the preset's name).

    Raises:
        ConfigError: num_classes or in_channels is not an integer >= 1.
    """
    if not (is_integer(num_classes) and num_classes >= 1 and is_integer(in_channels) and in_channels >= 1):
        raise ConfigError(
            f"num_classes and in_channels must be integers of at least 1, got {num_classes!r} and {in_channels!r}; "
            "e.g. create_model('cmt_unet_tiny', num_classes=6, in_channels=4)"
        )
    runtime = runtime or RuntimeOptions()
    resnet = ResNetEncoder(config.backbone, in_channels, runtime.pretrained_backbone)
    encoder: Encoder = resnet
    if config.mamba:
        mamba = VMambaEncoder(
            in_channels=in_channels,
            dims=config.mamba_dims,
            depths=config.mamba_depths,
            stem_channels=config.mamba_stem_channels,
            d_state=config.d_state,
            expand=config.ssm_expand,
            drop_path_rate=config.drop_path_rate,
            scan_backend=runtime.scan_backend,
        )
        encoder = CNNMambaEncoder(
            resnet,
            mamba,
            num_heads=config.fusion_heads,
            window_size=config.window_size,
            mlp_ratio=config.mlp_ratio,
            wavelet=config.wavelet,
            fused_attention=runtime.fused_attention,
        )
    decoder: nn.Module
    if config.decoder == "unet":
        decoder = UNetDecoder(encoder.feature_info, num_classes, config.unet_channels)
    else:
        decoder = UNetFormerDecoder(
            encoder.feature_info,
            num_classes,
            decode_channels=config.decode_channels,
            num_heads=config.decoder_heads,
            window_size=config.window_size,
            hybrid=config.decoder == "hybrid",
            wavelet_convs=config.decoder == "hybrid",
            wavelet=config.wavelet,
            use_msaa=config.use_msaa,
            use_rcm=config.use_rcm,
            dropout=config.dropout,
            fused_attention=runtime.fused_attention,
        )
    model = SegmentationModel(encoder, decoder, in_channels=in_channels, num_classes=num_classes)
    model.architecture, model.config = architecture, config
    model.set_gradient_checkpointing(runtime.gradient_checkpointing)
    return model.to(memory_format=torch.channels_last)  # NHWC: faster convs on CPU (oneDNN) and GPU (tensor cores)
