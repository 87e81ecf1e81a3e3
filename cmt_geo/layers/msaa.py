"""Multi-scale attention aggregation (MSAA): fuses three encoder skips into one, with channel and spatial attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.errors import ConfigError


class ChannelAttention(nn.Module):
    """CBAM-style channel gate: sigmoid(MLP(avg-pool) + MLP(max-pool)): (B, C, H, W) -> (B, C, 1, 1)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(), nn.Conv2d(hidden, channels, 1, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Channel gate of x."""
        return torch.sigmoid(self.mlp(x.mean(dim=(2, 3), keepdim=True)) + self.mlp(x.amax(dim=(2, 3), keepdim=True)))


class SpatialAttention(nn.Module):
    """Spatial gate: sigmoid(conv7x7([mean over C, max over C])): (B, C, H, W) -> (B, 1, H, W)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Spatial gate of x."""
        pooled = torch.cat((x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)), dim=1)
        return torch.sigmoid(self.conv(pooled))


class MultiScaleAttentionAggregation(nn.Module):
    """MSAA: aggregate three skips at the scale of one of them.

    As the reference: the skips, resized to the target skip's size, are concatenated and reduced by one 1x1 conv
    (`down`) to out_channels / factor; the result goes through channel attention (avg + max MLP) and, in parallel,
    spatial attention over the sum of 3x3, 5x5 and 7x7 convs; the sum of both is projected back to out_channels.
    `down` is applied per skip (its weight split by input channels) before resizing, then summed: the same result,
    since a 1x1 conv commutes with bilinear resizing, without resizing the wide coarse skips.

    Args:
        in_channels: channels of the three skips, finest first.
        out_channels: channels of the output (those of the target skip).
        target: index of the skip whose size the output has.
        factor: channel reduction inside the module.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, target: int, factor: int = 4) -> None:
        super().__init__()
        if len(in_channels) != 3 or not 0 <= target < 3:
            raise ConfigError(
                f"MSAA aggregates exactly three skips, got channels {tuple(in_channels)} and target {target}"
            )
        hidden = max(out_channels // factor, 1)
        self.target = target
        self.in_channels = tuple(in_channels)
        self.down = nn.Conv2d(sum(in_channels), hidden, 1)
        self.convs = nn.ModuleList(nn.Conv2d(hidden, hidden, k, padding=k // 2) for k in (3, 5, 7))
        self.channel_attention = ChannelAttention(hidden)
        self.spatial_attention = SpatialAttention()
        self.project = nn.Conv2d(hidden, out_channels, 1, bias=False)

    def forward(self, skips: Sequence[Tensor]) -> Tensor:
        """skips: three (B, C_i, H_i, W_i) -> (B, out_channels, H_target, W_target)."""
        size = skips[self.target].shape[-2:]
        weights = self.down.weight.split(self.in_channels, dim=1)
        fused: Tensor | None = None
        for index, (weight, skip) in enumerate(zip(weights, skips, strict=True)):
            reduced = F.conv2d(skip, weight, self.down.bias if index == 0 else None)
            if skip.shape[-2:] != size:
                reduced = F.interpolate(reduced, size=size, mode="bilinear", align_corners=False)
            fused = reduced if fused is None else fused + reduced
        assert fused is not None  # three skips
        channel = fused * self.channel_attention(fused)
        multi_scale = sum((conv(fused) for conv in self.convs), torch.zeros_like(fused))
        spatial = multi_scale * self.spatial_attention(multi_scale)
        return self.project(channel + spatial)
