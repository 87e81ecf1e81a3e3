"""Convolution building blocks: conv + batch norm (+ ReLU6), depthwise-separable convs and the 1x1-conv MLP."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _same_padding(kernel_size: int, dilation: int = 1, stride: int = 1) -> int:
    """Symmetric padding that keeps the size for odd kernels at stride 1 (as the reference computes it)."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def conv2d_same(x: Tensor, weight: Tensor, bias: Tensor | None = None, groups: int = 1) -> Tensor:
    """Stride-1 conv2d keeping H and W, zero-padded as torch's padding="same" (even kernels: one more bottom/right)."""
    size = weight.shape[-1]
    if size % 2:
        return F.conv2d(x, weight, bias, padding=size // 2, groups=groups)
    before = (size - 1) // 2
    return F.conv2d(F.pad(x, (before, before + 1, before, before + 1)), weight, bias, groups=groups)


class SameConv2d(nn.Conv2d):
    """A stride-1 nn.Conv2d that keeps H and W for odd and even kernels: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        """Convolve with "same" output size."""
        return conv2d_same(x, self.weight, self.bias, self.groups)


class ConvBN(nn.Sequential):
    """Conv2d (no bias) followed by BatchNorm2d: (B, C_in, H, W) -> (B, C_out, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=_same_padding(kernel_size, stride=stride),
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        )


class ConvBNReLU(ConvBN):
    """Conv2d (no bias), BatchNorm2d and ReLU6: (B, C_in, H, W) -> (B, C_out, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self.append(nn.ReLU6())


class SeparableConvBN(nn.Sequential):
    """Depthwise conv, BatchNorm2d, pointwise 1x1 conv (UNetFormer's projection): (B, C, H, W) -> (B, C_out, H', W').

    Zero-padded by (k - 1) // 2 on every side as the reference, so odd kernels keep the size and even kernels lose
    one row and column (H' = H - 1): `GlobalLocalAttention` first reflect-pads one pixel at the bottom and right.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                padding=_same_padding(kernel_size),
                groups=in_channels,
                bias=False,
            ),
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )


class ConvMLP(nn.Module):
    """Two 1x1 convolutions with an activation between: (B, C, H, W) -> (B, C_out, H, W)."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int | None = None,
        activation: type[nn.Module] = nn.ReLU6,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_channels, hidden_channels, 1)
        self.act = activation()
        self.fc2 = nn.Conv2d(hidden_channels, out_channels or in_channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Apply fc1, activation, dropout, fc2, dropout."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
