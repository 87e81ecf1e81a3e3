"""Wavelet layers: a fixed DWT / inverse DWT pair, the wavelet-transform convolution (WTConv2d) and Haar patch merging.

The transforms themselves are the stateless ops of `cmt_geo.ops.wavelet`; sub-bands are ordered LL, HL, LH, HH as
documented there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.conv import SameConv2d, conv2d_same
from cmt_geo.layers.fusion import batch_norm_affine
from cmt_geo.ops.wavelet import HAAR_NAMES, dwt2, haar_dwt2, haar_idwt2, idwt2, wavelet_filter_bank


class WaveletTransform(nn.Module):
    """A fixed 2-D DWT / inverse DWT pair for one wavelet (Haar takes the slicing fast path).

    The filters are non-persistent buffers: they are rebuilt from the wavelet name, never stored in checkpoints.
    """

    analysis: Tensor
    synthesis: Tensor

    def __init__(self, wavelet: str = "db1") -> None:
        super().__init__()
        analysis, synthesis = wavelet_filter_bank(wavelet)
        self.wavelet = wavelet
        self.is_haar = wavelet in HAAR_NAMES
        self.register_buffer("analysis", analysis, persistent=False)  # float64; cast to the input dtype on use
        self.register_buffer("synthesis", synthesis, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """DWT: (B, C, H, W), H and W even -> (B, C, 4, H/2, W/2)."""
        return haar_dwt2(x) if self.is_haar else dwt2(x, self.analysis)

    def inverse(self, bands: Tensor) -> Tensor:
        """Inverse DWT: (B, C, 4, h, w) -> (B, C, 2h, 2w)."""
        return haar_idwt2(bands) if self.is_haar else idwt2(bands, self.synthesis)


def _pad_to_even(x: Tensor) -> Tensor:
    height, width = x.shape[-2:]
    if height % 2 or width % 2:
        x = F.pad(x, (0, width % 2, 0, height % 2))
    return x


class WTConv2d(nn.Module):
    """Wavelet-transform depthwise convolution: a large receptive field from small kernels on wavelet sub-bands.

    Per level, the low-pass band of the previous level is transformed; all four sub-bands go through a depthwise
    conv times a learnable per-channel scale (init 0.1); the results are summed back up the levels by inverse DWTs
    and added to a depthwise base conv times a per-channel scale (init 1). Same parameters as the reference.
    The scales are folded into the conv weights, so each conv is one kernel launch.

    Args:
        channels: input and output channels C.
        kernel_size: depthwise kernel size, odd or even ("same" padding; even kernels pad one more bottom/right).
        stride: output stride (subsampling of the result).
        bias: whether the base conv has a bias.
        levels: number of wavelet levels, at least 1.
        wavelet: PyWavelets name; "db1" (Haar) is the fast default.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 5,
        stride: int = 1,
        bias: bool = True,
        levels: int = 1,
        wavelet: str = "db1",
    ) -> None:
        super().__init__()
        if levels < 1:
            raise ConfigError(f"WTConv2d levels must be at least 1, got {levels}; use levels=1 for one wavelet level")
        if stride < 1:
            raise ConfigError(f"WTConv2d stride must be at least 1, got {stride}")
        self.channels, self.stride, self.levels = channels, stride, levels
        self.transform = WaveletTransform(wavelet)
        self.base_conv = SameConv2d(channels, channels, kernel_size, groups=channels, bias=bias)
        self.base_scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.wavelet_convs = nn.ModuleList(
            SameConv2d(4 * channels, 4 * channels, kernel_size, groups=4 * channels, bias=False) for _ in range(levels)
        )
        self.wavelet_scales = nn.ParameterList(
            nn.Parameter(torch.full((1, 4 * channels, 1, 1), 0.1)) for _ in range(levels)
        )

    scales_folded: bool = False
    """True after `fold_for_inference_`: the conv weights already hold the scales (which are then ones)."""

    @torch.no_grad()
    def fold_for_inference_(self, norm: nn.BatchNorm2d | None = None) -> None:
        """In place, for inference: fold the scales (and an eval-mode BatchNorm2d that follows) into the convs.

        Afterwards the layer computes norm(self(x)) as before (with norm=None: self(x)), one conv per branch without
        re-scaling the weights on every call. The layer is linear per channel, so the norm's per-channel scale
        multiplies the base conv and all four sub-band kernels of that channel, and its shift joins the base bias.
        """
        if self.scales_folded:
            raise ConfigError("this WTConv2d's scales are folded already; fold_for_inference_ runs once per layer")
        out_scale, out_shift = batch_norm_affine(norm) if norm is not None else (None, None)
        base_scale = self.base_scale.reshape(-1) * (out_scale if out_scale is not None else 1.0)
        self.base_conv.weight.mul_(base_scale.reshape(-1, 1, 1, 1))
        if out_shift is not None:
            bias = self.base_conv.bias * base_scale if self.base_conv.bias is not None else 0.0
            self.base_conv.bias = nn.Parameter(bias + out_shift, requires_grad=False)
        elif self.base_conv.bias is not None:
            self.base_conv.bias.mul_(base_scale)
        for conv, scale in zip(self.wavelet_convs, self.wavelet_scales, strict=True):
            assert isinstance(conv, SameConv2d)
            band_scale = scale.reshape(-1)
            if out_scale is not None:
                band_scale = band_scale * out_scale.repeat_interleave(4)  # channel 4c + k: band k of channel c
            conv.weight.mul_(band_scale.reshape(-1, 1, 1, 1))
            scale.fill_(1.0)
        self.base_scale.fill_(1.0)
        self.scales_folded = True

    def _scaled_depthwise(self, x: Tensor, conv: nn.Module, scale: Tensor) -> Tensor:
        assert isinstance(conv, SameConv2d)
        if self.scales_folded:
            return conv2d_same(x, conv.weight, conv.bias, groups=conv.groups)
        per_channel = scale.reshape(-1)
        weight = conv.weight * per_channel.reshape(-1, 1, 1, 1)
        bias = conv.bias * per_channel if conv.bias is not None else None
        return conv2d_same(x, weight, bias, groups=conv.groups)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, ceil(H / stride), ceil(W / stride)); any H, W (odd sizes are padded per level)."""
        level_outputs: list[Tensor] = []
        level_sizes: list[tuple[int, int]] = []
        low = x
        for conv, scale in zip(self.wavelet_convs, self.wavelet_scales, strict=True):
            level_sizes.append((low.shape[-2], low.shape[-1]))
            bands = self.transform(_pad_to_even(low))
            low = bands[:, :, 0]
            batch, channels, _, height, width = bands.shape
            filtered = self._scaled_depthwise(bands.reshape(batch, 4 * channels, height, width), conv, scale)
            level_outputs.append(filtered.reshape(batch, channels, 4, height, width))
        carried: Tensor | None = None
        for filtered, (height, width) in zip(reversed(level_outputs), reversed(level_sizes), strict=True):
            if carried is not None:
                filtered = torch.cat((filtered[:, :, :1] + carried.unsqueeze(2), filtered[:, :, 1:]), dim=2)
            carried = self.transform.inverse(filtered)[..., :height, :width]
        assert carried is not None  # levels >= 1
        out = self._scaled_depthwise(x, self.base_conv, self.base_scale) + carried
        if self.stride > 1:
            out = out[..., :: self.stride, :: self.stride]
        return out


class WaveletSeparableConv(nn.Sequential):
    """WTConv2d depthwise (with bias), then a pointwise 1x1 conv: (B, C, H, W) -> (B, C_out, H, W).

    As the reference's depthwise-separable WTConv: no normalization between the two convs.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, levels: int = 1, wavelet: str = "db1"
    ) -> None:
        super().__init__(
            WTConv2d(in_channels, kernel_size, bias=True, levels=levels, wavelet=wavelet),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )


class WaveletConvBNReLU(nn.Sequential):
    """CMT-UNet's ConvBNReLU: depthwise WTConv2d (with bias), BatchNorm2d, ReLU6: (B, C, H, W) -> (B, C, H, W).

    Depthwise, so the channels stay C (the reference's ConvBNReLU takes an out_channels it does not use).
    """

    def __init__(self, channels: int, kernel_size: int = 3, wavelet: str = "db1") -> None:
        super().__init__(
            WTConv2d(channels, kernel_size, bias=True, wavelet=wavelet), nn.BatchNorm2d(channels), nn.ReLU6()
        )


class HaarPatchMerging(nn.Module):
    """Downsampling by a one-level Haar DWT: concat (LL, HL, LH, HH) -> LayerNorm(4C) -> Linear(4C -> 2C).

    Works channels-last: (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), out_dim); odd sizes are zero-padded.
    """

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim or 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H/2, W/2, 2C)."""
        bands = haar_dwt2(_pad_to_even(x.permute(0, 3, 1, 2)))  # (B, C, 4, h, w)
        merged = bands.permute(0, 3, 4, 2, 1).flatten(3)  # (B, h, w, 4C), band-major
        return self.reduction(self.norm(merged))
