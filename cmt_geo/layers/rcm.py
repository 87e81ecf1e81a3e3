"""Rectangular self-calibration module (RCM): a cheap axial-context gate on a depthwise conv, with a ConvMLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cmt_geo.layers.blocks import drop_path
from cmt_geo.layers.conv import ConvMLP


class RectangularSelfCalibration(nn.Module):
    """Depthwise 3x3 conv gated by sigmoid(11x1 conv(ReLU(BN(1x11 conv(pool_h + pool_w))))): (B, C, H, W)."""

    def __init__(self, channels: int, band_kernel_size: int = 11, square_kernel_size: int = 3) -> None:
        super().__init__()
        self.local = nn.Conv2d(channels, channels, square_kernel_size, padding=square_kernel_size // 2, groups=channels)
        self.excite = nn.Sequential(
            nn.Conv2d(channels, channels, (1, band_kernel_size), padding=(0, band_kernel_size // 2), groups=channels),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, (band_kernel_size, 1), padding=(band_kernel_size // 2, 0), groups=channels),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Gate the local conv of x by its rectangular context."""
        context = x.mean(dim=3, keepdim=True) + x.mean(dim=2, keepdim=True)  # (B, C, H, 1) + (B, C, 1, W)
        return self.excite(context) * self.local(x)


class RectangularCalibrationModule(nn.Module):
    """RCM: x + DropPath(gamma * ConvMLP(BN(RectangularSelfCalibration(x)))), with layer scale gamma (init 1e-6).

    Args:
        channels: channels C.
        mlp_ratio: hidden width of the ConvMLP (GELU) relative to C.
        layer_scale_init: initial value of the per-channel layer scale.
        drop_path_rate: stochastic depth probability.
    """

    def __init__(
        self, channels: int, mlp_ratio: float = 2.0, layer_scale_init: float = 1e-6, drop_path_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.token_mixer = RectangularSelfCalibration(channels)
        self.norm = nn.BatchNorm2d(channels)
        self.mlp = ConvMLP(channels, int(channels * mlp_ratio), activation=nn.GELU)
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale_init))
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        out = self.mlp(self.norm(self.token_mixer(x))) * self.gamma.reshape(1, -1, 1, 1)
        return x + self.drop_path(out)
