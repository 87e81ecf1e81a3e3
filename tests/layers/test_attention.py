"""Window attention, global-local attention, ECA and hybrid attention."""

from __future__ import annotations

import pytest
import torch

from cmt_geo.errors import ConfigError
from cmt_geo.layers.attention import (
    EfficientChannelAttention,
    GlobalLocalAttention,
    HybridAttention,
    WindowAttention,
    eca_kernel_size,
    relative_position_index,
)


def test_relative_position_index_depends_only_on_the_offset() -> None:
    size = 4
    index = relative_position_index(size)
    assert index.shape == (size * size, size * size)
    assert index.unique().numel() == (2 * size - 1) ** 2
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    offsets = torch.stack((rows[:, None] - rows[None, :], cols[:, None] - cols[None, :]), dim=-1).reshape(-1, 2)
    pairs = {(int(dy), int(dx)): int(i) for (dy, dx), i in zip(offsets, index.flatten(), strict=True)}
    for (dy, dx), i in zip(offsets, index.flatten(), strict=True):
        assert pairs[(int(dy), int(dx))] == int(i)


@pytest.mark.parametrize("size", [(16, 16), (13, 21)])
def test_fused_window_attention_matches_explicit_math(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    fused = WindowAttention(32, num_heads=4, window_size=8).double()
    explicit = WindowAttention(32, num_heads=4, window_size=8, fused=False).double()
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(2, 32, *size, dtype=torch.float64, requires_grad=True)
    out_fused, out_explicit = fused(x), explicit(x)
    assert out_fused.shape == x.shape
    torch.testing.assert_close(out_fused, out_explicit)
    (grad_fused,) = torch.autograd.grad(out_fused.sum(), fused.relative_position_bias_table)
    (grad_explicit,) = torch.autograd.grad(out_explicit.sum(), explicit.relative_position_bias_table)
    torch.testing.assert_close(grad_fused, grad_explicit)


def test_window_attention_stays_inside_its_window() -> None:
    attention = WindowAttention(16, num_heads=2, window_size=4).eval()
    x = torch.randn(1, 16, 8, 8)
    changed = x.clone()
    changed[:, :, 1, 1] += 10.0  # top-left window only
    difference = (attention(changed) - attention(x)).abs().sum(dim=1)[0]
    assert difference[:4, :4].sum() > 0
    assert difference[4:, :].max() == 0
    assert difference[:, 4:].max() == 0


def test_window_attention_rejects_heads_that_do_not_divide_dim() -> None:
    with pytest.raises(ConfigError, match="not divisible by num_heads 5"):
        WindowAttention(32, num_heads=5)


def test_global_local_attention_takes_its_local_branch_from_another_feature() -> None:
    attention = GlobalLocalAttention(32, num_heads=4, window_size=8, local_channels=12)
    x, context = torch.randn(2, 32, 11, 19), torch.randn(2, 12, 11, 19)
    assert attention(x, context).shape == (2, 32, 11, 19)
    with torch.no_grad():
        for conv in (attention.local1[0], attention.local2[0]):
            conv.weight.zero_()
    attention.eval()
    torch.testing.assert_close(attention(x, context), attention(x, torch.randn_like(context)))


@pytest.mark.parametrize("window_size", [0, 7])
def test_global_local_attention_needs_an_even_window(window_size: int) -> None:
    with pytest.raises(ConfigError, match="window_size must be even"):
        GlobalLocalAttention(16, num_heads=2, window_size=window_size)


def test_global_local_attention_handles_maps_smaller_than_a_window() -> None:
    attention = GlobalLocalAttention(16, num_heads=2, window_size=8, wavelet_projection=False)
    assert attention(torch.randn(1, 16, 1, 3)).shape == (1, 16, 1, 3)


@pytest.mark.parametrize(("channels", "expected"), [(64, 3), (256, 5), (512, 5), (16, 3)])
def test_eca_kernel_size(channels: int, expected: int) -> None:
    assert eca_kernel_size(channels) == expected


def test_eca_scales_each_channel_by_a_gate_in_zero_one() -> None:
    eca = EfficientChannelAttention(64)
    x = torch.rand(2, 64, 5, 7) + 0.5
    ratio = eca(x) / x
    assert ((ratio > 0) & (ratio < 1)).all()
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))


def test_hybrid_attention_is_global_local_then_channel_gate() -> None:
    torch.manual_seed(0)
    hybrid = HybridAttention(32, num_heads=4, window_size=8).eval()
    plain = GlobalLocalAttention(32, num_heads=4, window_size=8).eval()
    plain.load_state_dict(hybrid.state_dict(), strict=False)
    assert hybrid.channel is not None
    assert plain.channel is None
    with torch.no_grad():
        hybrid.channel.conv.weight.zero_()  # gate = sigmoid(0) = 0.5 for every channel
    x = torch.randn(1, 32, 12, 12)
    torch.testing.assert_close(hybrid(x), 0.5 * plain(x))


def test_hybrid_attention_backward_under_bf16_autocast() -> None:
    hybrid = HybridAttention(32, num_heads=4, window_size=8)
    x = torch.randn(2, 32, 12, 20, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = hybrid(x)
    out.float().mean().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()


@pytest.mark.slow
def test_hybrid_attention_compiles_on_channels_last_maps_smaller_than_a_window() -> None:
    attention = HybridAttention(16, num_heads=2, window_size=8).to(memory_format=torch.channels_last)
    compiled = torch.compile(attention, dynamic=False)
    x = torch.randn(2, 16, 3, 4).to(memory_format=torch.channels_last).requires_grad_()
    (compiled_grad,) = torch.autograd.grad(compiled(x).square().sum(), x)
    (eager_grad,) = torch.autograd.grad(attention(x).square().sum(), x)
    torch.testing.assert_close(compiled_grad, eager_grad, atol=1e-4, rtol=1e-4)
