"""Inference-time layer rewrites: batch norms folded into convs, parallel convs merged, all exact in eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.attention import GlobalLocalAttention
from cmt_geo.layers.blocks import AttentionBlock
from cmt_geo.layers.conv import ConvBNReLU, SeparableConvBN
from cmt_geo.layers.fusion import (
    fold_batch_norm,
    fold_input_affine,
    fold_named_batch_norms_,
    fold_sequential_batch_norms_,
    merge_parallel_convs,
)


def _random_norm(channels: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels).double().eval()
    assert norm.running_mean is not None
    assert norm.running_var is not None
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    return norm


@pytest.mark.parametrize(("groups", "bias", "stride"), [(1, False, 1), (4, True, 2), (8, False, 1)])
def test_fold_batch_norm_equals_conv_then_norm(groups: int, bias: bool, stride: int) -> None:
    conv = nn.Conv2d(8, 8, 3, stride=stride, padding=1, groups=groups, bias=bias).double()
    norm = _random_norm(8)
    x = torch.randn(2, 8, 11, 13, dtype=torch.float64)
    torch.testing.assert_close(fold_batch_norm(conv, norm)(x), norm(conv(x)))


def test_fold_input_affine_equals_affine_then_pointwise_and_refuses_wider_kernels() -> None:
    conv = nn.Conv2d(6, 4, 1).double()
    scale, shift = torch.rand(6, dtype=torch.float64) + 0.5, torch.randn(6, dtype=torch.float64)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    expected = conv(x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1))
    torch.testing.assert_close(fold_input_affine(conv, scale, shift)(x), expected)
    with pytest.raises(ConfigError, match="unpadded 1x1"):
        fold_input_affine(nn.Conv2d(6, 4, 3, padding=1), scale, shift)


def test_merge_parallel_convs_equals_their_sum_and_checks_alignment() -> None:
    wide, narrow = nn.Conv2d(5, 3, 3, padding=1).double(), nn.Conv2d(5, 3, 1, bias=False).double()
    x = torch.randn(1, 5, 9, 6, dtype=torch.float64)
    torch.testing.assert_close(merge_parallel_convs(wide, narrow)(x), wide(x) + narrow(x))
    with pytest.raises(ConfigError, match="odd centred kernels"):
        merge_parallel_convs(wide, nn.Conv2d(5, 3, 2).double())


@pytest.mark.parametrize("block", [lambda: ConvBNReLU(4, 6, 3, stride=2), lambda: SeparableConvBN(4, 6, 5)])
def test_sequences_fold_their_norms(block: object) -> None:
    torch.manual_seed(0)
    layer = block().double().eval()  # type: ignore[operator]
    for index, module in enumerate(layer):
        if isinstance(module, nn.BatchNorm2d):
            layer[index] = _random_norm(module.num_features)
    x = torch.randn(2, 4, 12, 12, dtype=torch.float64)
    expected = layer(x)
    fold_sequential_batch_norms_(layer)
    assert not any(isinstance(module, nn.BatchNorm2d) for module in layer)
    torch.testing.assert_close(layer(x), expected)


def test_named_norms_fold_into_their_convs() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1).double(), _random_norm(4)
            self.conv2, self.bn2 = nn.Conv2d(4, 4, 1).double(), _random_norm(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))

    block = Block().eval()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    expected = block(x)
    fold_named_batch_norms_(block)
    assert isinstance(block.bn1, nn.Identity)
    assert isinstance(block.bn2, nn.Identity)
    torch.testing.assert_close(block(x), expected)


def test_attention_block_and_global_local_attention_fuse_in_place() -> None:
    torch.manual_seed(0)
    attention = GlobalLocalAttention(16, num_heads=4, window_size=4, local_channels=8)
    block = AttentionBlock(16, attention, mlp_ratio=2.0, context_channels=8).double().eval()
    for name in ("norm1", "norm2", "context_norm"):
        setattr(block, name, _random_norm(getattr(block, name).num_features))
    x, context = torch.randn(2, 16, 12, 12, dtype=torch.float64), torch.randn(2, 8, 12, 12, dtype=torch.float64)
    expected = block(x, context)
    with torch.no_grad():
        block.fuse_for_inference_()
        attention.fuse_for_inference_()
        attention.attention.fuse_for_inference_()
    assert isinstance(block.norm2, nn.Identity)
    assert attention.local2 is None
    torch.testing.assert_close(block(x, context), expected)
