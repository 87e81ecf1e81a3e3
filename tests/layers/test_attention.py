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


def test_eca_gates_each_channel_by_a_conv_across_channel_means() -> None:
    """Hand-computed: channel means (1, 2, 3), kernel (1, 0, -1) zero-padded -> gates sigmoid((-2, -2, 2))."""
    eca = EfficientChannelAttention()
    with torch.no_grad():
        eca.conv.weight.copy_(torch.tensor([[[1.0, 0.0, -1.0]]]))
    x = torch.tensor([0.0, 2.0, 1.0, 3.0, 3.0, 3.0]).reshape(1, 3, 1, 2)
    gates = torch.sigmoid(torch.tensor([-2.0, -2.0, 2.0])).reshape(1, 3, 1, 1)
    torch.testing.assert_close(eca(x), x * gates)
    assert eca.conv.weight.shape == (1, 1, 3)  # the reference's fixed kernel, whatever the channels
    with pytest.raises(ConfigError, match="kernel_size must be odd"):
        EfficientChannelAttention(4)


def test_hybrid_attention_adds_channel_attention_of_its_input_to_global_local_attention() -> None:
    """The reference's sum GLA(x) + ECA(x), not a gate on GLA(x): with a zero projection GLA(x) = 0, and with a
    zero ECA kernel every gate is sigmoid(0) = 1/2, so the block returns x / 2 exactly."""
    torch.manual_seed(0)
    hybrid = HybridAttention(GlobalLocalAttention(32, num_heads=4, window_size=8)).eval()
    x = torch.randn(1, 32, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(hybrid(x), hybrid.global_local(x) + hybrid.channel(x))
        hybrid.global_local.proj[1].weight.zero_()
        hybrid.channel.conv.weight.zero_()
        torch.testing.assert_close(hybrid(x), 0.5 * x, rtol=0, atol=0)


def _local_identity_attention(projection_kernel: torch.Tensor) -> GlobalLocalAttention:
    """A 1-channel global-local attention whose sum before the projection is x itself (zero attention values,
    identity local branch) and whose projection is the 2x2 base conv `projection_kernel` of its WTConv2d."""
    attention = GlobalLocalAttention(1, num_heads=1, window_size=2).eval()
    with torch.no_grad():
        attention.attention.qkv.weight.zero_()
        attention.local1[0].weight.zero_()
        attention.local2[0].weight.fill_(1.0)
        attention.local2[1].running_var.fill_(1.0 - attention.local2[1].eps)  # BatchNorm: identity
        wtconv, pointwise = attention.proj
        wtconv.base_conv.weight.copy_(projection_kernel.reshape(1, 1, 2, 2))
        wtconv.base_conv.bias.zero_()
        wtconv.wavelet_convs[0].weight.zero_()
        pointwise.weight.fill_(1.0)
    return attention


def test_projection_sees_a_reflected_last_row_and_column() -> None:
    """Hand-computed: the 2x2 all-ones projection sums each pixel with its right, lower and lower-right neighbours;
    past the last row and column it finds the reflected row and column (3x3 -> 4x4: 1 2 3 2 / 4 5 6 5 / 7 8 9 8 /
    4 5 6 5), as the reference pads before projecting. Zero padding would give 9 15 9 in the last row/column."""
    attention = _local_identity_attention(torch.ones(2, 2))
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    expected = torch.tensor([[12.0, 16.0, 16.0], [24.0, 28.0, 28.0], [24.0, 28.0, 28.0]]).reshape(1, 1, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(attention(x), expected)


def test_even_projections_keep_the_size_of_odd_maps() -> None:
    x = torch.randn(1, 16, 11, 19)
    for wavelet_projection in (True, False):
        attention = GlobalLocalAttention(16, num_heads=2, window_size=8, wavelet_projection=wavelet_projection)
        assert attention(x).shape == x.shape


def test_hybrid_attention_backward_under_bf16_autocast() -> None:
    hybrid = HybridAttention(GlobalLocalAttention(32, num_heads=4, window_size=8))
    x = torch.randn(2, 32, 12, 20, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = hybrid(x)
    out.float().mean().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()


@pytest.mark.slow
def test_hybrid_attention_compiles_on_channels_last_maps_smaller_than_a_window() -> None:
    attention = HybridAttention(GlobalLocalAttention(16, num_heads=2, window_size=8))
    attention = attention.to(memory_format=torch.channels_last)
    compiled = torch.compile(attention, dynamic=False)
    x = torch.randn(2, 16, 3, 4).to(memory_format=torch.channels_last).requires_grad_()
    (compiled_grad,) = torch.autograd.grad(compiled(x).square().sum(), x)
    (eager_grad,) = torch.autograd.grad(attention(x).square().sum(), x)
    torch.testing.assert_close(compiled_grad, eager_grad, atol=1e-4, rtol=1e-4)
