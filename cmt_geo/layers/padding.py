"""Padding helpers: reflect padding that degrades gracefully on tiny maps, and padding up to a size multiple."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pad_reflect(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """F.pad (left, right, top, bottom) in "reflect" mode, or "replicate" where the map is too small to reflect."""
    left, right, top, bottom = pad
    if max(left, right) < x.shape[-1] and max(top, bottom) < x.shape[-2]:
        return F.pad(x, pad, mode="reflect")
    # Replicate by indexing: torch.compile mis-predicts the strides of replication_pad2d_backward on channels-last.
    height, width = x.shape[-2:]
    rows = torch.arange(-top, height + bottom, device=x.device).clamp_(0, height - 1)
    cols = torch.arange(-left, width + right, device=x.device).clamp_(0, width - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Reflect-pad (B, C, H, W) at the bottom and right so that H and W are multiples of `multiple`.

    An input whose H and W are already multiples is returned as it is (the same tensor, no copy).
    """
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return pad_reflect(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x
