"""Inference-time layer rewrites: batch norms folded into convs, parallel convs merged, large convs as matrix
products, all exact in eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cmt_geo.errors import ConfigError
from cmt_geo.layers.attention import GlobalLocalAttention
from cmt_geo.layers.blocks import AttentionBlock
from cmt_geo.layers.conv import ConvBNReLU, SeparableConvBN
from cmt_geo.layers.fusion import (
    SMALL_CONV_OUTPUT,
    LargeConv2d,
    fold_batch_norm,
    fold_input_affine,
    fold_named_batch_norms_,
    fold_sequential_batch_norms_,
    merge_parallel_convs,
    use_matrix_products_for_large_convs_,
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


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(1, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0), (3, 1, 0)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_large_conv_equals_the_conv_on_small_and_large_inputs(
    kernel: int, stride: int, padding: int, channels_last: bool
) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, kernel, stride=stride, padding=padding).double()
    large = nn.Conv2d(6, 5, kernel, stride=stride, padding=padding).double()
    large.load_state_dict(conv.state_dict())
    large.__class__ = LargeConv2d
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for shape, product in [((2, 6, 9, 7), True), ((1, 6, 40, 40), False)]:  # past SMALL_CONV_OUTPUT: the conv
        x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=layout)
        out = large(x)
        torch.testing.assert_close(out, conv(x))
        # the matrix product's output is channels-last whatever the input's layout; the conv keeps the input's
        assert out.is_contiguous(memory_format=torch.channels_last) == (product or channels_last)
    assert 2 * 9 * 7 <= SMALL_CONV_OUTPUT < 40 * 40 // stride**2
    for x in [torch.randn(6, 9, 7, dtype=torch.float64), torch.randn(0, 6, 9, 7, dtype=torch.float64)]:
        torch.testing.assert_close(large(x), conv(x))  # unbatched and empty inputs: the plain conv


def test_only_large_plain_convs_become_matrix_products_with_their_weights_and_keys() -> None:
    model = nn.Sequential(
        nn.Conv2d(2048, 2048, 1),  # 4.2 M weights: large
        nn.Conv2d(2048, 2048, 3, padding=1, groups=2048),  # depthwise: never
        nn.Conv2d(2048, 64, 3, padding="same"),  # padding given as a string: never
        nn.Conv2d(64, 64, 3, padding=1),  # 37 k weights: small
    )
    state = {key: value.clone() for key, value in model.state_dict().items()}
    use_matrix_products_for_large_convs_(model)
    assert [type(module) is LargeConv2d for module in model] == [True, False, False, False]
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())
