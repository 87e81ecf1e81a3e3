"""Convolution building blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cmt_geo.layers.conv import ConvBN, ConvBNReLU, ConvMLP, SameConv2d, SeparableConvBN, conv2d_same


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 8])
def test_same_conv_keeps_the_size(kernel_size: int) -> None:
    conv = SameConv2d(3, 5, kernel_size)
    assert conv(torch.randn(1, 3, 9, 14)).shape == (1, 5, 9, 14)


def test_even_kernels_pad_one_more_at_the_bottom_right() -> None:
    x, weight = torch.randn(1, 1, 6, 6), torch.randn(1, 1, 4, 4)
    torch.testing.assert_close(conv2d_same(x, weight), F.conv2d(F.pad(x, (1, 2, 1, 2)), weight))


def test_separable_conv_pads_symmetrically_as_the_reference() -> None:
    block = SeparableConvBN(2, 3, kernel_size=8).eval()
    x = torch.randn(1, 2, 9, 11)
    depthwise, norm, pointwise = block
    reference = F.conv2d(F.pad(x, (3, 3, 3, 3)), depthwise.weight, groups=2)
    with torch.no_grad():
        torch.testing.assert_close(block(x), pointwise(norm(reference)))
    assert block(x).shape == (1, 3, 8, 10)  # an even kernel loses a row and a column: callers pad first


def test_conv_blocks_shapes() -> None:
    x = torch.randn(2, 8, 10, 12)
    assert ConvBN(8, 4, 3, stride=2)(x).shape == (2, 4, 5, 6)
    assert (ConvBNReLU(8, 4)(x) >= 0).all()
    assert SeparableConvBN(8, 6, kernel_size=3)(x).shape == (2, 6, 10, 12)
    assert ConvMLP(8, 32)(x).shape == x.shape
