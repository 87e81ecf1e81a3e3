"""The wavelet layers: WaveletTransform, WTConv2d and Haar patch merging."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cmt_geo.errors import ConfigError
from cmt_geo.layers.wavelet import HaarPatchMerging, WaveletConvBNReLU, WaveletSeparableConv, WaveletTransform, WTConv2d
from cmt_geo.ops.wavelet import dwt2, haar_dwt2, wavelet_filter_bank


@pytest.mark.parametrize("wavelet", ["db1", "haar", "db2", "sym4", "coif1", "bior2.2"])
def test_wavelet_transform_inverts_itself_and_takes_the_haar_path_for_haar(wavelet: str) -> None:
    transform = WaveletTransform(wavelet).double()
    x = torch.randn(2, 3, 16, 20, dtype=torch.float64)
    bands = transform(x)
    assert transform.is_haar == (wavelet in {"db1", "haar"})
    analysis, _ = wavelet_filter_bank(wavelet)
    torch.testing.assert_close(bands, haar_dwt2(x) if transform.is_haar else dwt2(x, analysis), rtol=0, atol=0)
    torch.testing.assert_close(transform.inverse(bands), x, atol=1e-9, rtol=0)


@pytest.mark.parametrize("levels", [0, -1])
def test_wtconv_needs_at_least_one_level(levels: int) -> None:
    with pytest.raises(ConfigError, match="levels must be at least 1"):
        WTConv2d(4, levels=levels)


@pytest.mark.parametrize(
    ("kernel_size", "stride", "levels", "size"),
    [(5, 1, 1, (17, 23)), (8, 1, 1, (16, 16)), (3, 2, 2, (15, 20)), (4, 1, 3, (33, 9)), (7, 3, 2, (31, 31))],
)
def test_wtconv_output_shape(kernel_size: int, stride: int, levels: int, size: tuple[int, int]) -> None:
    layer = WTConv2d(6, kernel_size, stride=stride, levels=levels)
    out = layer(torch.randn(2, 6, *size))
    assert out.shape == (2, 6, -(-size[0] // stride), -(-size[1] // stride))


@pytest.mark.parametrize("wavelet", ["db1", "db2", "sym3"])
@pytest.mark.parametrize("size", [(16, 16), (15, 21)])
def test_wtconv_with_identity_kernels_reconstructs_its_input(wavelet: str, size: tuple[int, int]) -> None:
    """Identity wavelet kernels with scale 1 and a zero base branch make WTConv2d exactly IDWT(DWT(x)) = x."""
    layer = WTConv2d(3, kernel_size=3, wavelet=wavelet).double()
    with torch.no_grad():
        layer.base_scale.zero_()
        layer.wavelet_scales[0].fill_(1.0)
        layer.wavelet_convs[0].weight.zero_()
        layer.wavelet_convs[0].weight[:, :, 1, 1] = 1.0
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x, atol=1e-9, rtol=0)


def test_wtconv_base_branch_is_a_scaled_depthwise_conv() -> None:
    layer = WTConv2d(4, kernel_size=5)
    with torch.no_grad():
        for scale in layer.wavelet_scales:
            scale.zero_()
        layer.base_scale.fill_(0.5)
    x = torch.randn(1, 4, 12, 12)
    expected = 0.5 * F.conv2d(x, layer.base_conv.weight, layer.base_conv.bias, padding=2, groups=4)
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_wtconv_runs_forward_and_backward_under_autocast(dtype: torch.dtype) -> None:
    layer = WTConv2d(8, kernel_size=5, levels=2)
    x = torch.randn(2, 8, 19, 24, requires_grad=True)
    with torch.autocast("cpu", dtype=dtype):
        out = layer(x)
    assert out.dtype == dtype
    out.float().square().mean().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert layer.wavelet_convs[1].weight.grad is not None


def test_wtconv_filters_are_not_parameters_or_checkpoint_state() -> None:
    layer = WTConv2d(4, kernel_size=3)
    names = {name for name, _ in layer.named_parameters()}
    assert names == {"base_conv.weight", "base_conv.bias", "base_scale", "wavelet_convs.0.weight", "wavelet_scales.0"}
    assert not any("analysis" in key or "synthesis" in key for key in layer.state_dict())


def test_haar_patch_merging_is_norm_and_projection_of_the_subbands() -> None:
    merge = HaarPatchMerging(dim=5, out_dim=7)
    x = torch.randn(2, 9, 11, 5)  # odd sizes are zero-padded
    out = merge(x)
    assert out.shape == (2, 5, 6, 7)
    padded = F.pad(x.permute(0, 3, 1, 2), (0, 1, 0, 1))
    bands = haar_dwt2(padded)  # (B, C, 4, h, w)
    concatenated = torch.cat([bands[:, :, band].permute(0, 2, 3, 1) for band in range(4)], dim=-1)
    torch.testing.assert_close(out, merge.reduction(merge.norm(concatenated)))


def test_wtconv_on_channels_last_input_gives_the_same_channels_last_output() -> None:
    layer = WTConv2d(6, kernel_size=5, levels=2)
    x = torch.randn(2, 6, 20, 28)
    out = layer(x.to(memory_format=torch.channels_last))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, layer(x), atol=1e-5, rtol=1e-5)


def test_wavelet_conv_bn_relu_is_a_depthwise_wtconv_then_batch_norm_and_relu6() -> None:
    """Hand-computed, one channel: base conv = right neighbour (zero past the border) + bias 0.5; the wavelet branch
    keeps only the low-pass band (identity kernel, scale 1), which the inverse transform turns into 2x2 block means
    (-0.75, 1, 2, 3); BatchNorm is the identity; ReLU6 clips to 0..6."""
    block = WaveletConvBNReLU(1).eval()
    wtconv, norm, _ = block
    with torch.no_grad():
        wtconv.base_conv.weight.zero_()
        wtconv.base_conv.weight[0, 0, 1, 2] = 1.0
        wtconv.base_conv.bias.fill_(0.5)
        wtconv.wavelet_convs[0].weight.zero_()
        wtconv.wavelet_convs[0].weight[0, 0, 1, 1] = 1.0
        wtconv.wavelet_scales[0].copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(1, 4, 1, 1))
        norm.running_var.fill_(1.0 - norm.eps)
    x = torch.tensor([[-4.0, -3, 1, 3], [2, 2, 0, 0], [5, -1, 8, 0], [1, 3, 0, 4]]).reshape(1, 1, 4, 4)
    expected = torch.tensor([[0.0, 0.75, 4.5, 1.5], [1.75, 0, 1.5, 1.5], [1.5, 6, 3.5, 3.5], [5.5, 2.5, 6, 3.5]])
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected.reshape(1, 1, 4, 4))


def test_wavelet_conv_bn_relu_keeps_channels_apart() -> None:
    block = WaveletConvBNReLU(8).eval()
    wtconv = block[0]
    assert wtconv.base_conv.groups == 8
    assert wtconv.base_conv.weight.shape == (8, 1, 3, 3)
    assert sum(p.numel() for p in block.parameters()) == 8 * (9 + 1 + 1 + 4 * 9 + 4 + 2)  # no dense 8x8x3x3 conv
    x = torch.randn(1, 8, 10, 12)
    changed = x.clone()
    changed[:, 5] += 1.0
    with torch.no_grad():
        difference = (block(changed) - block(x)).abs().amax(dim=(0, 2, 3))
    assert difference[5] > 0
    assert difference[torch.arange(8) != 5].max() == 0


def test_wavelet_separable_conv_has_a_biased_wtconv_and_no_norm() -> None:
    conv = WaveletSeparableConv(6, 4, kernel_size=8)
    assert [type(module) for module in conv] == [WTConv2d, torch.nn.Conv2d]
    assert conv[0].base_conv.bias is not None
    assert conv[1].bias is None
    assert conv(torch.randn(1, 6, 9, 9)).shape == (1, 4, 9, 9)


@pytest.mark.parametrize(("kernel_size", "levels", "size"), [(3, 1, (16, 20)), (8, 1, (17, 17)), (5, 2, (15, 22))])
@pytest.mark.parametrize("with_norm", [False, True])
def test_wtconv_fold_for_inference_keeps_the_output(
    kernel_size: int, levels: int, size: tuple[int, int], with_norm: bool
) -> None:
    torch.manual_seed(0)
    layer = WTConv2d(5, kernel_size, levels=levels).double()
    norm = torch.nn.BatchNorm2d(5).double().eval()
    with torch.no_grad():
        layer.base_scale.uniform_(0.5, 1.5)
        for scale in layer.wavelet_scales:
            scale.uniform_(0.1, 0.5)
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 5, *size, dtype=torch.float64)
    expected = norm(layer(x)) if with_norm else layer(x)
    layer.fold_for_inference_(norm if with_norm else None)
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-12)
    with pytest.raises(ConfigError, match="folded already"):
        layer.fold_for_inference_()
