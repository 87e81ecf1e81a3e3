"""Segmentation models rewritten for inference (a copy, or in place): batch norms folded into convs, wavelet scales
pre-applied, large convs run as matrix products on small CPU inputs.

>>> from cmt_geo.models import create_model, optimize_for_inference
>>> fast = optimize_for_inference(create_model("cmt_unet_tiny", num_classes=6))
>>> with torch.inference_mode():
...     logits = fast(images)  # the plain model's eval logits, up to float rounding
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cmt_geo.layers.fusion import (
    fold_named_batch_norms_,
    fold_sequential_batch_norms_,
    use_matrix_products_for_large_convs_,
)
from cmt_geo.layers.wavelet import WTConv2d
from cmt_geo.models.encoders import ResNetEncoder
from cmt_geo.models.segmentation import SegmentationModel


def optimize_for_inference(model: SegmentationModel, *, inplace: bool = False) -> SegmentationModel:
    """`model` rewritten for fast eval-mode forward passes: a copy (`model` left as it was), or `model` itself.

    It computes the plain model's eval-mode forward (equal within float rounding, about 1e-6 relative):
    every BatchNorm2d that follows a conv (ResNet, ConvBN / ConvBNReLU, depthwise-separable projections, the
    WTConv2d + BN of CMT-UNet's ConvBNReLU) is folded into it; the BatchNorm2d before each attention block's MLP is
    folded into its first 1x1 conv; each global-local attention's 3x3 and 1x1 local ConvBNs become one 3x3 conv;
    WTConv2d scales are multiplied into the kernels once; window attention gathers its position bias once; convs
    with millions of weights run as matrix products where their CPU input is small (`LargeConv2d`).
    It is in eval mode with gradients off: it is for inference only (its weights no longer match a checkpoint's
    names, so save and fine-tune the original).

    Args:
        model: a model from `create_model` (or `load_checkpoint`), on any device.
        inplace: rewrite `model` itself instead of a copy (no second set of weights in memory); it is then for
            inference only.

    Returns:
        The optimized model (a copy unless `inplace`), on the model's device.
    """
    optimized = (model if inplace else copy.deepcopy(model)).eval()
    for module in optimized.modules():
        if isinstance(module, ResNetEncoder):
            for block in module.body.modules():
                fold_named_batch_norms_(block)
    modules = list(optimized.modules())  # a list: the rewrites replace children
    for module in modules:
        if isinstance(module, nn.Sequential):
            fold_sequential_batch_norms_(module)  # first: a WTConv2d takes the norm after it with its scales
    for module in modules:
        if isinstance(module, WTConv2d) and not module.scales_folded:
            module.fold_for_inference_()
        elif callable(fuse := getattr(module, "fuse_for_inference_", None)):
            fuse()
    optimized.requires_grad_(False)
    optimized = optimized.to(memory_format=torch.channels_last)
    use_matrix_products_for_large_convs_(optimized)
    return optimized
