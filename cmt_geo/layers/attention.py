"""Attention layers: window self-attention with relative position bias, global-local attention, ECA and hybrid."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.conv import ConvBN, SeparableConvBN
from cmt_geo.layers.fusion import fold_sequential_batch_norms_, merge_parallel_convs
from cmt_geo.layers.padding import pad_reflect
from cmt_geo.layers.wavelet import WaveletSeparableConv


def relative_position_index(window_size: int) -> Tensor:
    """Index into a ((2w-1)^2, heads) bias table for every (query, key) pair of a w x w window: (w^2, w^2) int64."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return relative[..., 0] * (2 * window_size - 1) + relative[..., 1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with a learned relative position bias.

    Uses `F.scaled_dot_product_attention` (fused kernels) by default; `fused=False` computes the same thing with
    explicit matmul + softmax, as a reference path.

    Args:
        dim: channels C (divisible by num_heads).
        num_heads: attention heads.
        window_size: window side w.
        qkv_bias: whether the 1x1 qkv projection has a bias.
        fused: use scaled_dot_product_attention.
    """

    relative_position_index: Tensor
    frozen_bias: Tensor | None

    def __init__(
        self, dim: int, num_heads: int, window_size: int = 8, qkv_bias: bool = False, fused: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"attention dim {dim} is not divisible by num_heads {num_heads}; pick a divisor of {dim}")
        self.num_heads, self.window_size, self.fused = num_heads, window_size, fused
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.register_buffer("frozen_bias", None, persistent=False)

    @torch.no_grad()
    def fuse_for_inference_(self) -> None:
        """In place, for inference: gather the bias once instead of on every call (it no longer follows the table)."""
        self.frozen_bias = self.relative_position_bias().contiguous()

    def relative_position_bias(self) -> Tensor:
        """(heads, w^2, w^2) additive attention bias."""
        if self.frozen_bias is not None:
            return self.frozen_bias
        area = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(area, area, self.num_heads).permute(2, 0, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W); the map is reflect-padded to a multiple of the window, then cropped."""
        batch, channels, height, width = x.shape
        size = self.window_size
        pad_h, pad_w = -height % size, -width % size
        if pad_h or pad_w:
            x = pad_reflect(x, (0, pad_w, 0, pad_h))
        rows, cols = (height + pad_h) // size, (width + pad_w) // size
        head_dim = channels // self.num_heads
        # The 1x1 qkv conv as a linear layer on (B, H, W, C) tokens (a view of a channels-last map), then one copy:
        # (B, rows, w, cols, w, 3, heads, d) -> (3, B * rows * cols, heads, w * w, d)
        qkv = F.linear(x.permute(0, 2, 3, 1), self.qkv.weight.flatten(1), self.qkv.bias)
        qkv = qkv.reshape(batch, rows, size, cols, size, 3, self.num_heads, head_dim)
        qkv = qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(3, batch * rows * cols, self.num_heads, size * size, head_dim)
        query, key, value = qkv.unbind(0)
        bias = self.relative_position_bias().to(query.dtype)
        if self.fused:
            # a 4-D mask (an expanded view) lets the CPU pick its flash kernel instead of the math fallback
            mask = bias.unsqueeze(0).expand(query.shape[0], -1, -1, -1)
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        else:
            scores = (query * head_dim**-0.5) @ key.transpose(-2, -1) + bias
            out = scores.softmax(dim=-1) @ value
        # (B, rows, cols, heads, w, w, d) -> (B, rows, w, cols, w, heads, d): channels-last output, one copy
        out = out.reshape(batch, rows, cols, self.num_heads, size, size, head_dim)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(batch, rows * size, cols * size, channels)
        return out[:, :height, :width].permute(0, 3, 1, 2)


class EfficientChannelAttention(nn.Module):
    """ECA: global average pool, 1-D conv across channels, sigmoid gate: (B, C, H, W) -> (B, C, H, W).

    Args:
        kernel_size: odd length of the 1-D conv across channels; the reference fixes it at 3.
    """

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"ECA kernel_size must be odd and positive, got {kernel_size}; the reference uses 3")
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Reweight channels of x."""
        pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C)
        gate = torch.sigmoid(self.conv(pooled)).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return x * gate


class GlobalLocalAttention(nn.Module):
    """UNetFormer's global-local attention: window attention + cross-window context + a local conv branch.

    global = window attention of x, then AvgPool (w, 1) + AvgPool (1, w) for cross-window context;
    local = conv3x3-BN + conv1x1-BN of `local_source` (x itself, or another branch's feature: the fusion block
    feeds the Mamba feature there); output = projection(global + local), where the sum is first reflect-padded by
    one pixel at the bottom and right and the projection's output cropped back to H x W, as the reference does
    (its even-sized projection kernel otherwise reaches past the last row and column).

    Args:
        dim: channels C of x and of the output.
        num_heads: attention heads.
        window_size: window side w (even); also the projection's kernel size.
        local_channels: channels of `local_source` when it is not x (default C).
        wavelet_projection: project with a wavelet depthwise-separable conv (CMT-UNet) instead of a plain
            depthwise-separable conv (UNetFormer).
        wavelet: PyWavelets name for the wavelet projection.
        fused: use scaled_dot_product_attention.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        window_size: int = 8,
        local_channels: int | None = None,
        wavelet_projection: bool = True,
        wavelet: str = "db1",
        fused: bool = True,
    ) -> None:
        super().__init__()
        if window_size < 2 or window_size % 2:
            raise ConfigError(f"window_size must be even and at least 2, got {window_size}; the reference uses 8")
        self.window_size = window_size
        self.attention = WindowAttention(dim, num_heads, window_size, fused=fused)
        self.local1: nn.Module = ConvBN(local_channels or dim, dim, kernel_size=3)
        self.local2: nn.Module | None = ConvBN(local_channels or dim, dim, kernel_size=1)
        self.proj: nn.Module = (
            WaveletSeparableConv(dim, dim, kernel_size=window_size, wavelet=wavelet)
            if wavelet_projection
            else SeparableConvBN(dim, dim, kernel_size=window_size)
        )

    @torch.no_grad()
    def fuse_for_inference_(self) -> None:
        """In place, for inference: the two local ConvBNs become one 3x3 conv (norms folded, the 1x1 as its centre)."""
        if self.local2 is None:
            return
        wide, narrow = self.local1, self.local2
        assert isinstance(wide, nn.Sequential)
        assert isinstance(narrow, nn.Sequential)
        fold_sequential_batch_norms_(wide)
        fold_sequential_batch_norms_(narrow)
        wide_conv, narrow_conv = wide[0], narrow[0]
        assert isinstance(wide_conv, nn.Conv2d)
        assert isinstance(narrow_conv, nn.Conv2d)
        self.local1 = merge_parallel_convs(wide_conv, narrow_conv)
        self.local2 = None

    def cross_window_context(self, attended: Tensor) -> Tensor:
        """Sum of a vertical and a horizontal w-long average (zero-padded, as the reference): (B, C, H, W)."""
        half = self.window_size // 2 - 1
        vertical = F.avg_pool2d(pad_reflect(attended, (0, 0, 0, 1)), (self.window_size, 1), stride=1, padding=(half, 0))
        horizontal = F.avg_pool2d(
            pad_reflect(attended, (0, 1, 0, 0)), (1, self.window_size), stride=1, padding=(0, half)
        )
        return vertical + horizontal

    def forward(self, x: Tensor, local_source: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W); local_source: (B, C_local, H, W) or None for x -> (B, C, H, W)."""
        height, width = x.shape[-2:]
        source = x if local_source is None else local_source
        local = self.local1(source) if self.local2 is None else self.local2(source) + self.local1(source)
        mixed = self.cross_window_context(self.attention(x)) + local
        return self.proj(pad_reflect(mixed, (0, 1, 0, 1)))[..., :height, :width]


class HybridAttention(nn.Module):
    """CMT-UNet's decoder attention: the sum GLA(x) + ECA(x), as the reference (ECA reweights x, not GLA(x)).

    Args:
        global_local: the global-local attention.
        eca_kernel_size: kernel of the ECA's 1-D conv across channels (3 in the reference).
    """

    def __init__(self, global_local: GlobalLocalAttention, eca_kernel_size: int = 3) -> None:
        super().__init__()
        self.global_local = global_local
        self.channel = EfficientChannelAttention(eca_kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.global_local(x) + self.channel(x)
