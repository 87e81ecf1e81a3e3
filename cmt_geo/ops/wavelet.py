"""Stateless 2-D discrete wavelet transforms: filter banks, a Haar fast path and a convolution path for any wavelet.

A one-level Haar transform is a strided reshape and a few additions, so `haar_dwt2` / `haar_idwt2` do exactly that;
any other PyWavelets wavelet goes through `dwt2` / `idwt2`, a grouped stride-2 convolution with periodic extension
(perfect reconstruction for orthogonal and biorthogonal wavelets). Filters are cast to the input's dtype, so every
transform here runs under bf16 / fp16 autocast.

Sub-band order, everywhere in this module: LL, HL, LH, HH with the first letter naming the filter along H (rows) and
the second along W (columns), as DESIGN.md writes it: index 1 is high-pass along H and low-pass along W (it responds
to horizontal edges), index 2 is low-pass along H and high-pass along W (vertical edges). This is PyWavelets' order
and sign: `pywt.dwt2` returns (cA, (cH, cV, cD)) = bands 0, 1, 2, 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cmt_geo.errors import ConfigError

HAAR_NAMES = frozenset({"haar", "db1"})
"""PyWavelets names of the Haar wavelet, which `haar_dwt2` / `haar_idwt2` compute without convolutions."""


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
