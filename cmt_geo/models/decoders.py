"""Decoders built from an encoder's `feature_info`: the UNetFormer family (hybrid-attention or plain) and U-Net.

A decoder maps the four encoder features (strides 4, 8, 16, 32) to class logits at stride 4: (B, K, H/4, W/4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.attention import GlobalLocalAttention, HybridAttention
from cmt_geo.layers.blocks import AttentionBlock
from cmt_geo.layers.conv import ConvBN, ConvBNReLU
from cmt_geo.layers.heads import FeatureRefinementHead, SegmentationHead, WeightedFusion, upsample_like
from cmt_geo.layers.msaa import MultiScaleAttentionAggregation
from cmt_geo.layers.rcm import RectangularCalibrationModule
from cmt_geo.models.encoders import FeatureLevel, run_maybe_checkpointed


def _check_four_levels(feature_info: Sequence[FeatureLevel]) -> list[int]:
    if len(feature_info) != 4:
        raise ConfigError(f"decoders take four encoder levels (strides 4, 8, 16, 32), got {len(feature_info)}")
    return [level.channels for level in feature_info]


class UNetFormerDecoder(nn.Module):
    """UNetFormer-style decoder; with `hybrid=True` and `wavelet_convs=True` it is CMT-UNet's decoder.

    Deepest feature -> 1x1 ConvBN to decode_channels -> attention block; then twice: weighted fusion with the next
    skip -> attention block; then the feature refinement head with the stride-4 skip and the segmentation head.
    Attention blocks use hybrid attention (the sum GLA(x) + ECA(x)) or plain global-local attention (UNetFormer).

    Args:
        feature_info: the encoder's four levels.
        num_classes: output classes K.
        decode_channels: decoder width D.
        num_heads: attention heads.
        window_size: attention window.
        hybrid: hybrid attention (GLA + ECA) instead of plain GLA.
        wavelet_convs: CMT-UNet's wavelet convolutions (projections, and the depthwise WTConv ConvBNReLU of the
            skip fusions, refinement head and segmentation head) instead of UNetFormer's plain ones.
        wavelet: PyWavelets name for the wavelet convolutions.
        use_msaa: refine the three finest skips with multi-scale attention aggregation (residual).
        use_rcm: add a rectangular self-calibration module after each attention block.
        dropout: dropout of the segmentation head.
        fused_attention: use scaled_dot_product_attention.
    """

    def __init__(
        self,
        feature_info: Sequence[FeatureLevel],
        num_classes: int,
        decode_channels: int = 64,
        num_heads: int = 8,
        window_size: int = 8,
        hybrid: bool = True,
        wavelet_convs: bool = True,
        wavelet: str = "db1",
        use_msaa: bool = False,
        use_rcm: bool = False,
        dropout: float = 0.1,
        fused_attention: bool = True,
    ) -> None:
        super().__init__()
        channels = _check_four_levels(feature_info)

        def attention() -> nn.Module:
            global_local = GlobalLocalAttention(
                decode_channels,
                num_heads,
                window_size,
                wavelet_projection=wavelet_convs,
                wavelet=wavelet,
                fused=fused_attention,
            )
            return HybridAttention(global_local) if hybrid else global_local

        self.pre_conv = ConvBN(channels[-1], decode_channels, 1)
        self.blocks = nn.ModuleList(AttentionBlock(decode_channels, attention()) for _ in range(3))
        self.fusions = nn.ModuleList(
            WeightedFusion(channels[level], decode_channels, wavelet_convs, wavelet) for level in (2, 1)
        )
        self.refine = FeatureRefinementHead(channels[0], decode_channels, wavelet_convs, wavelet)
        self.head = SegmentationHead(decode_channels, num_classes, dropout, wavelet_convs, wavelet)
        self.msaa = (
            nn.ModuleList(MultiScaleAttentionAggregation(channels[:3], channels[level], level) for level in range(3))
            if use_msaa
            else None
        )
        self.rcm = nn.ModuleList(RectangularCalibrationModule(decode_channels) for _ in range(3)) if use_rcm else None
        self.gradient_checkpointing = False

    def _block(self, index: int, x: Tensor) -> Tensor:
        x = run_maybe_checkpointed(self.blocks[index], self.gradient_checkpointing, x)
        return self.rcm[index](x) if self.rcm is not None else x

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Four (B, C_i, H / s_i, W / s_i) -> logits (B, K, H/4, W/4)."""
        skips = list(features)
        if self.msaa is not None:
            skips[:3] = [skip + msaa(features[:3]) for skip, msaa in zip(features[:3], self.msaa, strict=True)]
        x = self._block(0, self.pre_conv(skips[3]))
        for index, (fusion, skip) in enumerate(zip(self.fusions, (skips[2], skips[1]), strict=True), start=1):
            x = self._block(index, fusion(x, skip))
        return self.head(self.refine(x, skips[0]))


class UNetDecoder(nn.Module):
    """Plain U-Net decoder: upsample, concatenate the skip, two ConvBNReLU 3x3, per level; 1x1 conv to logits.

    Args:
        feature_info: the encoder's four levels.
        num_classes: output classes K.
        channels: widths of the three upsampling stages (stride 16, 8, 4).
    """

    def __init__(
        self, feature_info: Sequence[FeatureLevel], num_classes: int, channels: Sequence[int] = (256, 128, 64)
    ) -> None:
        super().__init__()
        encoder_channels = _check_four_levels(feature_info)
        if len(channels) != 3:
            raise ConfigError(f"the U-Net decoder has 3 stages, got channels {tuple(channels)}")
        inputs = [encoder_channels[3], *channels[:2]]
        skips = encoder_channels[2::-1]
        self.stages = nn.ModuleList(
            nn.Sequential(ConvBNReLU(below + skip, width), ConvBNReLU(width, width))
            for below, skip, width in zip(inputs, skips, channels, strict=True)
        )
        self.head = nn.Conv2d(channels[-1], num_classes, 1)
        self.gradient_checkpointing = False

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Four (B, C_i, H / s_i, W / s_i) -> logits (B, K, H/4, W/4)."""
        x = features[3]
        for stage, skip in zip(self.stages, (features[2], features[1], features[0]), strict=True):
            x = run_maybe_checkpointed(stage, self.gradient_checkpointing, torch.cat((upsample_like(x, skip), skip), 1))
        return self.head(x)
