"""Segmentation models rewritten for inference (a copy, or in place): batch norms folded into convs, wavelet scales
pre-applied, large convs run as matrix products on small CPU inputs; and, for long runs, compiled with frozen weights.

>>> from cmt_geo.models import compile_for_inference, create_model, optimize_for_inference
>>> fast = optimize_for_inference(create_model("cmt_unet_tiny", num_classes=6))
>>> with torch.inference_mode():
...     logits = fast(images)  # the plain model's eval logits, up to float rounding
...     logits = compile_for_inference(fast)(images)  # the same; compiles first (minutes), then runs faster
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cmt_geo.errors import BackendUnavailableError
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


class _CompiledForInference(nn.Module):
    """A model under `torch.compile` whose compile failures are one-line `BackendUnavailableError`s."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.compiled = torch.compile(model, dynamic=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config

        try:
            # global while tracing: dynamo reads it to make the parameters constants (compile options come too late)
            with torch._inductor.config.patch(freezing=True):
                return self.compiled(images)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            reason = str(error).strip().splitlines()[0]
            raise BackendUnavailableError(
                f"torch.compile could not compile the model ({reason}); it needs a C++ compiler (g++ or clang) on a "
                "CPU, Triton on CUDA, and support for the device: install what is missing, or run the model "
                "uncompiled (without compile_for_inference; `cmtgeo predict` without --compile)"
            ) from error


def compile_for_inference(model: nn.Module) -> nn.Module:
    """`model` (an eval-mode model, best from `optimize_for_inference`) under `torch.compile` with frozen weights.

    Inductor then folds the weights as constants, prepacks them for oneDNN / MKL and fuses the elementwise ops. The
    first call for each input shape, dtype and memory layout compiles (minutes on a CPU: about 5 for
    `cmt_unet_base` at 4x3x512x512 on 2 cores, in every process), every later call is faster (there 17 %: 8.5
    instead of 10.1 s). So it pays off for long runs with one input shape, such as predicting large rasters; keep
    the shape fixed (pad partial batches), each new one compiles again.
    Compiling needs a C++ compiler on a CPU and Triton on CUDA; a failure raises `BackendUnavailableError` at the
    first call. The model must not be changed afterwards (the frozen weights would not follow).

    Args:
        model: the model to compile, on the device it will run on, in eval mode and without gradients.

    Returns:
        A module computing `model`'s forward (within float rounding).
    """
    return _CompiledForInference(model)
