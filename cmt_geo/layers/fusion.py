"""Inference-time rewrites of layers: batch norms folded into the convs next to them, parallel convs merged,
large convs run as matrix products on small inputs.

The folds and merges compute new weights from eval-mode statistics, so the rewritten layers compute what the
originals compute in eval mode (up to float rounding) and nothing else: they are for inference only.
"""

from __future__ import annotations

import copy
import itertools
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmt_geo.errors import ConfigError


def batch_norm_affine(norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm2d as a per-channel affine map y = scale * x + shift: (scale, shift), each (C,)."""
    assert norm.running_mean is not None
    assert norm.running_var is not None
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


def fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of `conv` (of the same class) that computes norm(conv(x)) in eval mode: (C_out,) scale and shift folded.

    Exact for any padding, stride and groups: BatchNorm acts on the conv's output channels.
    """
    scale, shift = batch_norm_affine(norm)
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        fused.weight.mul_(scale.reshape(-1, 1, 1, 1))
        bias = shift if conv.bias is None else conv.bias * scale + shift
        fused.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return fused


def fold_input_affine(conv: nn.Conv2d, scale: Tensor, shift: Tensor) -> nn.Conv2d:
    """A copy of a 1x1, ungrouped `conv` that computes conv(scale * x + shift) (per input channel).

    Only 1x1 convs without padding are exact for any input: a wider zero-padded kernel would see the shift where
    the original sees zeros.
    """
    if conv.kernel_size != (1, 1) or conv.groups != 1 or conv.padding not in ((0, 0), "valid"):
        raise ConfigError(
            f"fold_input_affine needs an unpadded 1x1 conv with groups=1, got {conv}; fold into such a conv"
        )
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        bias = conv.weight.flatten(1) @ shift
        if conv.bias is not None:
            bias = bias + conv.bias
        fused.weight.mul_(scale.reshape(1, -1, 1, 1))
        fused.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return fused


def merge_parallel_convs(wide: nn.Conv2d, narrow: nn.Conv2d) -> nn.Conv2d:
    """One conv equal to wide(x) + narrow(x), where `narrow` is a centred smaller kernel (e.g. a 1x1 beside a 3x3).

    Both must have stride 1, the same groups and "same" zero padding (k // 2 for odd k), so the narrow kernel is
    the wide one's centre taps.
    """
    wide_size, narrow_size = wide.kernel_size, narrow.kernel_size
    compatible = (
        wide.stride == narrow.stride == (1, 1)
        and wide.groups == narrow.groups
        and wide.dilation == narrow.dilation == (1, 1)
        and all(k % 2 for k in (*wide_size, *narrow_size))
        and wide.padding == (wide_size[0] // 2, wide_size[1] // 2)
        and narrow.padding == (narrow_size[0] // 2, narrow_size[1] // 2)
        and wide.weight.shape[:2] == narrow.weight.shape[:2]
    )
    if not compatible:
        raise ConfigError(
            f"cannot merge {narrow} into {wide}: both need odd centred kernels, stride 1 and the same groups"
        )
    pad_h, pad_w = (wide_size[0] - narrow_size[0]) // 2, (wide_size[1] - narrow_size[1]) // 2
    merged = copy.deepcopy(wide)
    with torch.no_grad():
        merged.weight.add_(F.pad(narrow.weight, (pad_w, pad_w, pad_h, pad_h)))
        bias = torch.zeros_like(wide.weight[:, 0, 0, 0])
        for conv in (wide, narrow):
            if conv.bias is not None:
                bias = bias + conv.bias
        merged.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return merged


def is_plain_batch_norm(module: nn.Module) -> bool:
    """A BatchNorm2d (exactly that class, so no activation is hidden in it) with running statistics."""
    return type(module) is nn.BatchNorm2d and module.track_running_stats and module.running_mean is not None


def fold_sequential_batch_norms_(sequence: nn.Sequential) -> None:
    """In place: each BatchNorm2d child that follows a Conv2d, or a layer with `fold_for_inference_(norm)` (WTConv2d),
    is folded into it and replaced by Identity."""
    names = list(sequence._modules)
    for first, second in itertools.pairwise(names):
        layer, norm = sequence._modules[first], sequence._modules[second]
        if norm is None or not is_plain_batch_norm(norm):
            continue
        assert isinstance(norm, nn.BatchNorm2d)
        if isinstance(layer, nn.Conv2d):
            sequence._modules[first] = fold_batch_norm(layer, norm)
        elif callable(fold := getattr(layer, "fold_for_inference_", None)):
            fold(norm)
        else:
            continue
        sequence._modules[second] = nn.Identity()


def fold_named_batch_norms_(module: nn.Module) -> None:
    """In place: children `convN` + `bnN` (timm's ResNet blocks and stem, where bnN directly follows convN).

    Only modules whose forward applies bnN right after convN may be given here; timm's ResNet does.
    """
    for name, conv in list(module.named_children()):
        if not (name.startswith("conv") and isinstance(conv, nn.Conv2d)):
            continue
        norm_name = "bn" + name.removeprefix("conv")
        norm = getattr(module, norm_name, None)
        if norm is not None and is_plain_batch_norm(norm):
            setattr(module, name, fold_batch_norm(conv, norm))
            setattr(module, norm_name, nn.Identity())


#: Weights of at least this many elements make a conv a `LargeConv2d` (16 MiB in fp32: a 2048 -> 2048 1x1 conv).
LARGE_CONV_WEIGHT = 1 << 22
#: Output pixels (batch x height x width) up to which a `LargeConv2d` runs as a matrix product.
SMALL_CONV_OUTPUT = 256


class LargeConv2d(nn.Conv2d):
    """A Conv2d with millions of weights that runs as one matrix product on small CPU inputs.

    oneDNN, which runs CPU convs, copies the weights into its blocked layout on every call; at the 8x8 bottleneck of
    a large model that copy is most of the time (a 2048 -> 8192 1x1 conv: 43 ms, 12 ms as a matrix product, AVX2).
    Where the output has at most `SMALL_CONV_OUTPUT` pixels, the input's (kh, kw, C) patches (a strided view,
    gathered once for kernels above 1x1) are multiplied by the weights viewed as an (out, kh * kw * C) matrix;
    elsewhere, off the CPU and for unbatched or empty inputs, it is the plain Conv2d. Needs groups 1, dilation 1,
    numeric padding and padding mode "zeros" (see `use_matrix_products_for_large_convs_`).
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.device.type != "cpu" or not x.numel():
            return super().forward(x)
        rows, cols = self.kernel_size
        pad_rows, pad_cols = cast(tuple[int, int], self.padding)
        stride_rows, stride_cols = self.stride
        batch, channels, height, width = x.shape
        out_rows = (height + 2 * pad_rows - rows) // stride_rows + 1
        out_cols = (width + 2 * pad_cols - cols) // stride_cols + 1
        if batch * out_rows * out_cols > SMALL_CONV_OUTPUT:
            return super().forward(x)
        padded = F.pad(x, (pad_cols, pad_cols, pad_rows, pad_rows)) if pad_rows or pad_cols else x
        s_batch, s_channel, s_row, s_col = padded.stride()
        patches = padded.as_strided(
            (batch, out_rows, out_cols, rows, cols, channels),
            (s_batch, s_row * stride_rows, s_col * stride_cols, s_row, s_col, s_channel),
        )
        matrix = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)  # a view of channels-last weights
        out = F.linear(patches.reshape(batch, out_rows, out_cols, -1), matrix, self.bias)
        return out.permute(0, 3, 1, 2)  # (B, out, H, W), stored channels-last


def use_matrix_products_for_large_convs_(model: nn.Module) -> None:
    """In place: every plain Conv2d with at least `LARGE_CONV_WEIGHT` weights, groups 1, dilation 1, numeric padding
    and padding mode "zeros" becomes a `LargeConv2d` (same weights and state dict keys), its weights stored
    channels-last."""
    for module in model.modules():
        if (
            type(module) is nn.Conv2d
            and module.weight.numel() >= LARGE_CONV_WEIGHT
            and module.groups == 1
            and module.dilation == (1, 1)
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        ):
            module.__class__ = LargeConv2d
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
