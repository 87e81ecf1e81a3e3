"""Padding helpers: reflect padding that degrades gracefully on tiny maps, and padding up to a size multiple."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pad_reflect(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """F.pad (left, right, top, bottom) in "reflect" mode, or "replicate" where the map is too small to reflect."""
    left, right, top, bottom = pad
    reflectable = max(left, right) < x.shape[-1] and max(top, bottom) < x.shape[-2]
    return F.pad(x, pad, mode="reflect" if reflectable else "replicate")


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Reflect-pad (B, C, H, W) at the bottom and right so that H and W are multiples of `multiple`."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return pad_reflect(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x
