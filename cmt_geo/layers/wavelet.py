"""Wavelet layers: 2-D discrete wavelet transforms, the wavelet-transform convolution (WTConv2d) and Haar patch merging.

A one-level Haar transform is a strided reshape and a few additions, so `haar_dwt2` / `haar_idwt2` do exactly that;
any other PyWavelets wavelet goes through `dwt2` / `idwt2`, a grouped stride-2 convolution with periodic extension
(perfect reconstruction for orthogonal and biorthogonal wavelets). Filters are cast to the input's dtype, so every
layer here runs under bf16 / fp16 autocast.

Sub-band order, everywhere in this module: LL, HL, LH, HH with the first letter naming the filter along H (rows) and
the second along W (columns), as DESIGN.md writes it: index 1 is high-pass along H and low-pass along W (it responds
to horizontal edges), index 2 is low-pass along H and high-pass along W (vertical edges). This is PyWavelets' order
and sign: `pywt.dwt2` returns (cA, (cH, cV, cD)) = bands 0, 1, 2, 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.conv import SameConv2d, conv2d_same

HAAR_NAMES = frozenset({"haar", "db1"})


def wavelet_filter_bank(wavelet: str) -> tuple[Tensor, Tensor]:
    """The four 2-D analysis and synthesis filters of a PyWavelets wavelet.

    Args:
        wavelet: a discrete wavelet name known to PyWavelets, e.g. "db1" (Haar), "db2", "sym4", "bior2.2".

    Returns:
        (analysis, synthesis), each (4, K, K) float64, in the module's sub-band order LL, HL, LH, HH.
        `analysis` is applied by cross-correlation (conv2d), `synthesis` by transposed convolution.
    """
    import pywt

    try:
        bank = pywt.Wavelet(wavelet)
    except ValueError:
        raise ConfigError(
            f"unknown wavelet {wavelet!r}: use a discrete PyWavelets name such as 'db1' (Haar), 'db2' or 'sym4' "
            "(pywt.wavelist(kind='discrete') lists them all)"
        ) from None
    dec_lo = torch.tensor(bank.dec_lo[::-1], dtype=torch.float64)
    dec_hi = torch.tensor(bank.dec_hi[::-1], dtype=torch.float64)
    rec_lo = torch.tensor(bank.rec_lo, dtype=torch.float64)
    rec_hi = torch.tensor(bank.rec_hi, dtype=torch.float64)

    def outer_products(lo: Tensor, hi: Tensor) -> Tensor:
        return torch.stack([torch.outer(lo, lo), torch.outer(hi, lo), torch.outer(lo, hi), torch.outer(hi, hi)])

    return outer_products(dec_lo, dec_hi), outer_products(rec_lo, rec_hi)


def is_channels_last(x: Tensor) -> bool:
    """Whether a (B, C, H, W) tensor is stored channels-last (and not also plainly contiguous)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def haar_dwt2(x: Tensor) -> Tensor:
    """One-level 2-D Haar transform by strided slicing.

    Args:
        x: (B, C, H, W) with even H and W.

    Returns:
        (B, C, 4, H/2, W/2): sub-bands LL, HL, LH, HH = pywt's cA, cH, cV, cD (orthonormal; as `dwt2` with "db1").
        For a channels-last x the result is stored as (B, H/2, W/2, C, 4), so that `.reshape(B, 4 * C, h, w)`
        is a channels-last view (channel 4c + k = band k of channel c): no layout transposes.
    """
    top_left, top_right = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    bottom_left, bottom_right = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    top_sum, top_diff = top_left + top_right, top_left - top_right
    bottom_sum, bottom_diff = bottom_left + bottom_right, bottom_left - bottom_right
    bands = (top_sum + bottom_sum, top_sum - bottom_sum, top_diff + bottom_diff, top_diff - bottom_diff)
    if is_channels_last(x):
        return torch.stack([band.permute(0, 2, 3, 1) for band in bands], dim=-1).mul_(0.5).permute(0, 3, 4, 1, 2)
    return torch.stack(bands, dim=2).mul_(0.5)


def haar_idwt2(bands: Tensor) -> Tensor:
    """Inverse of `haar_dwt2`: (B, C, 4, h, w) -> (B, C, 2h, 2w), channels-last when the bands are stored so."""
    low_low, low_high, high_low, high_high = bands.unbind(dim=2)
    row_sum, row_diff = low_low + low_high, low_low - low_high
    col_sum, col_diff = high_low + high_high, high_low - high_high
    corners = (row_sum + col_sum, row_sum - col_sum, row_diff + col_diff, row_diff - col_diff)
    batch, channels, height, width = low_low.shape
    if is_channels_last(corners[0]):
        top_left, top_right, bottom_left, bottom_right = (corner.permute(0, 2, 3, 1) for corner in corners)
        top = torch.stack((top_left, top_right), dim=3)  # (B, h, w, 2, C)
        bottom = torch.stack((bottom_left, bottom_right), dim=3)
        image = torch.stack((top, bottom), dim=2).mul_(0.5)  # (B, h, 2, w, 2, C)
        return image.reshape(batch, 2 * height, 2 * width, channels).permute(0, 3, 1, 2)
    top = torch.stack(corners[:2], dim=-1)
    bottom = torch.stack(corners[2:], dim=-1)
    return torch.stack((top, bottom), dim=-3).mul_(0.5).reshape(batch, channels, 2 * height, 2 * width)


def dwt2(x: Tensor, analysis: Tensor) -> Tensor:
    """One-level 2-D DWT of every channel as a grouped stride-2 convolution with periodic extension.

    Args:
        x: (B, C, H, W) with even H and W.
        analysis: (4, K, K) analysis filters from `wavelet_filter_bank`.

    Returns:
        (B, C, 4, H/2, W/2).
    """
    batch, channels, height, width = x.shape
    border = analysis.shape[-1] // 2 - 1
    if border > min(height, width):
        raise ConfigError(
            f"a {analysis.shape[-1]}-tap wavelet needs maps of at least {border} pixels per side, got "
            f"{height}x{width}; use fewer wavelet levels, a shorter wavelet or larger inputs"
        )
    if border:
        x = F.pad(x, (border, border, border, border), mode="circular")
    weight = analysis.to(x.dtype).repeat(channels, 1, 1).unsqueeze(1)
    out = F.conv2d(x, weight, stride=2, groups=channels)
    return out.reshape(batch, channels, 4, height // 2, width // 2)


def idwt2(bands: Tensor, synthesis: Tensor) -> Tensor:
    """Inverse of `dwt2`: (B, C, 4, h, w) -> (B, C, 2h, 2w), folding the periodic border back."""
    batch, channels, _, height, width = bands.shape
    weight = synthesis.to(bands.dtype).repeat(channels, 1, 1).unsqueeze(1)
    out = F.conv_transpose2d(bands.reshape(batch, 4 * channels, height, width), weight, stride=2, groups=channels)
    border = synthesis.shape[-1] // 2 - 1
    if not border:
        return out
    full_height, full_width = 2 * height, 2 * width
    out = out.clone()
    out[..., border : 2 * border, :] += out[..., full_height + border :, :]
    out[..., full_height : full_height + border, :] += out[..., :border, :]
    out = out[..., border : full_height + border, :]
    out = out.clone()
    out[..., border : 2 * border] += out[..., full_width + border :]
    out[..., full_width : full_width + border] += out[..., :border]
    return out[..., border : full_width + border]


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

    @staticmethod
    def _scaled_depthwise(x: Tensor, conv: nn.Module, scale: Tensor) -> Tensor:
        assert isinstance(conv, SameConv2d)
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
    """WTConv2d depthwise, BatchNorm2d, then a pointwise 1x1 conv: (B, C, H, W) -> (B, C_out, H, W)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, levels: int = 1, wavelet: str = "db1"
    ) -> None:
        super().__init__(
            WTConv2d(in_channels, kernel_size, bias=False, levels=levels, wavelet=wavelet),
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
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
