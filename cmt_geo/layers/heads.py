"""Decoder heads: weighted skip fusion, the feature-refinement head and the segmentation head.

Each takes `wavelet_convs`: CMT-UNet's wavelet convolutions (its ConvBNReLU is a depthwise WTConv2d + BN + ReLU6,
its projection a WTConv2d + 1x1 conv) or, with False, UNetFormer's plain ones (dense 3x3 ConvBNReLU, depthwise
3x3 + BN + 1x1 projection).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.layers.conv import ConvBN, ConvBNReLU, SeparableConvBN
from cmt_geo.layers.wavelet import WaveletConvBNReLU, WaveletSeparableConv


def upsample_like(x: Tensor, reference: Tensor) -> Tensor:
    """Bilinear resize of x (B, C, h, w) to the spatial size of reference (B, *, H, W)."""
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=False)


def conv_bn_relu(channels: int, wavelet_convs: bool, wavelet: str = "db1") -> nn.Module:
    """The decoder's 3x3 ConvBNReLU at `channels` in and out: wavelet depthwise (CMT-UNet) or dense (UNetFormer)."""
    return WaveletConvBNReLU(channels, 3, wavelet) if wavelet_convs else ConvBNReLU(channels, channels, 3)


class WeightedFusion(nn.Module):
    """Upsample the decoder feature to the skip's size and fuse: relu-normalized weights w0 * skip' + w1 * x.

    Args:
        skip_channels: channels of the encoder skip (projected by a 1x1 conv to decode_channels).
        decode_channels: channels of the decoder feature and of the output.
        wavelet_convs: the post-fusion ConvBNReLU is CMT-UNet's wavelet one, else UNetFormer's dense one.
        wavelet: PyWavelets name for the wavelet convolutions.
        eps: added to the weight sum.
    """

    def __init__(
        self,
        skip_channels: int,
        decode_channels: int,
        wavelet_convs: bool = True,
        wavelet: str = "db1",
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.pre_conv = nn.Conv2d(skip_channels, decode_channels, 1, bias=False)
        self.weights = nn.Parameter(torch.ones(2))
        self.eps = eps
        self.post_conv = conv_bn_relu(decode_channels, wavelet_convs, wavelet)

    def fuse(self, x: Tensor, skip: Tensor) -> Tensor:
        """Weighted sum of the upsampled x and the projected skip: (B, D, H, W)."""
        weights = F.relu(self.weights)
        weights = weights / (weights.sum() + self.eps)
        return weights[0] * self.pre_conv(skip) + weights[1] * upsample_like(x, skip)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """x: (B, D, h, w), skip: (B, C_skip, H, W) -> (B, D, H, W)."""
        return self.post_conv(self.fuse(x, skip))


class FeatureRefinementHead(WeightedFusion):
    """UNetFormer's feature refinement head: weighted fusion, then pixel attention + channel attention, projection.

    Args:
        skip_channels: channels of the stride-4 encoder skip.
        decode_channels: decoder channels D.
        wavelet_convs: CMT-UNet's wavelet ConvBNReLU and projection, else UNetFormer's plain ones.
        wavelet: PyWavelets name for the wavelet convolutions.
    """

    def __init__(
        self, skip_channels: int, decode_channels: int, wavelet_convs: bool = True, wavelet: str = "db1"
    ) -> None:
        super().__init__(skip_channels, decode_channels, wavelet_convs, wavelet)
        self.pixel_attention = nn.Sequential(
            nn.Conv2d(decode_channels, decode_channels, 3, padding=1, groups=decode_channels), nn.Sigmoid()
        )
        reduced = max(decode_channels // 16, 1)
        self.channel_attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(decode_channels, reduced, 1, bias=False),
            nn.ReLU6(),
            nn.Conv2d(reduced, decode_channels, 1, bias=False),
            nn.Sigmoid(),
        )
        self.shortcut = ConvBN(decode_channels, decode_channels, 1)
        self.proj: nn.Module = (
            WaveletSeparableConv(decode_channels, decode_channels, 3, wavelet=wavelet)
            if wavelet_convs
            else SeparableConvBN(decode_channels, decode_channels, 3)
        )
        self.act = nn.ReLU6()

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """x: (B, D, h, w), skip: (B, C_skip, H, W) -> (B, D, H, W)."""
        x = self.post_conv(self.fuse(x, skip))
        attended = self.pixel_attention(x) * x + self.channel_attention(x) * x
        return self.act(self.proj(attended) + self.shortcut(x))


class SegmentationHead(nn.Sequential):
    """ConvBNReLU 3x3, Dropout2d, 1x1 conv to class logits: (B, D, H, W) -> (B, num_classes, H, W).

    Args:
        in_channels: decoder channels D.
        num_classes: output classes.
        dropout: Dropout2d probability.
        wavelet_convs: the ConvBNReLU is CMT-UNet's wavelet one, else UNetFormer's dense one.
        wavelet: PyWavelets name for the wavelet convolution.
    """

    def __init__(
        self, in_channels: int, num_classes: int, dropout: float = 0.1, wavelet_convs: bool = True, wavelet: str = "db1"
    ) -> None:
        super().__init__(
            conv_bn_relu(in_channels, wavelet_convs, wavelet),
            nn.Dropout2d(dropout),
            nn.Conv2d(in_channels, num_classes, 1, bias=False),
        )
